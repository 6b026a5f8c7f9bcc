"""Node side of central mode: every committed change goes to the outbox, in its own transaction.

Turned on by LIENTHONG_OUTBOX=true (the composition root attaches it). Person resources are left out:
they are this node's identity link sets, and the hub links the copies it holds itself.
"""

from __future__ import annotations

SKIPPED_TYPES = frozenset({"Person"})


def attach_outbox(store) -> None:
    """Queue the keys of every flush of `store` (any origin) in its outbox table, in the same transaction."""

    def queue(tx, keys) -> None:
        store.outbox.queue(tx, [k for k in keys if k[0] not in SKIPPED_TYPES])

    store.on_flush(queue)

"""Crash leftovers (issue 12, item 4): inbox rows a killed process left "received" (archived, never
committed) are finished or dead-lettered, never left behind.

`lienthong recover` runs this; `lienthong serve` and `lienthong ingest` run it at start-up. A row is
claimed (turned "queued") only when it is older than a grace period, so a row a live process is still
working on is left to it; the claimed rows then go through the same path as the broker worker's:
parse, map, one group commit that also closes the rows, a dead letter for every record (or payload)
that cannot be stored. Re-processing is safe: ids are deterministic and unchanged resources keep their
version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from adapters.hl7v2.processor import CHANNEL as HL7_CHANNEL
from adapters.hl7v2.processor import process_queued
from adapters.pipeline import Archived, process_archived
from adapters.repository import ingest_repository
from fhir_server.logsafe import log_failure
from fhir_server.settings import Settings
from fhir_server.storage.base import StorageUnavailable
from fhir_server.timeutil import now_us

log = logging.getLogger("lienthong.recover")


@dataclass
class RecoverStats:
    """What a recovery did: rows claimed, closed by processing, dead-lettered whole, left queued."""

    claimed: int = 0
    finished: int = 0
    dead_lettered: int = 0
    left: list[int] = field(default_factory=list)


def _archived(row: dict) -> Archived:
    sm = row.get("summary") or {}
    return Archived(
        int(row["inbox_id"]),
        row["payload"],
        sm.get("adapter"),
        row.get("content_type"),
        sm.get("options") or {},
        row.get("source") or "recover",
    )


def _process(store, items: list[Archived], channels: dict[int, str], settings: Settings) -> set[int]:
    """Commit and close a chunk; HL7 v2 rows get the listener's MSH-10 de-duplication."""
    hl7 = [it for it in items if channels.get(it.inbox_id) == HL7_CHANNEL]
    files = [it for it in items if channels.get(it.inbox_id) != HL7_CHANNEL]
    closed: set[int] = set()
    if files:
        closed |= process_archived(store, files, settings=settings)[1]
    if hl7:
        closed |= set(process_queued(store, hl7, settings=settings).closed)
    return closed


def recover(
    store, settings: Settings | None = None, *, grace_seconds: float = 300.0, batch: int = 50
) -> RecoverStats:
    """Finish or dead-letter every inbox row left "received" for longer than `grace_seconds` (and
    "queued" ones too when no broker worker would pick them up)."""
    settings = settings or Settings.from_env()
    repo = ingest_repository(store)
    statuses = ("received",) if settings.broker_url else ("received", "queued")
    stats = RecoverStats()
    cutoff = now_us() - int(grace_seconds * 1_000_000)
    seen: set[int] = set()
    while True:
        ids = [i for i in repo.claim_stuck(statuses, cutoff, limit=batch) if i not in seen]
        if not ids:
            return stats
        seen.update(ids)
        stats.claimed += len(ids)
        rows = repo.load_inbox(ids)
        items = [_archived(rows[i]) for i in ids if i in rows]
        channels = {i: str(rows[i].get("channel") or "") for i in ids if i in rows}
        try:
            stats.finished += len(_process(store, items, channels, settings))
        except StorageUnavailable:
            stats.left += ids  # the database is down: they stay queued for the next run
            return stats
        except Exception as exc:  # noqa: BLE001 - one payload must not keep the others stuck
            log_failure(log, "recovering %d inbox rows failed; retrying them one by one", exc, len(ids))
            for item in items:
                done, dead = _one(store, repo, item, channels, settings)
                stats.finished += done
                stats.dead_lettered += dead


def _one(store, repo, item: Archived, channels: dict[int, str], settings: Settings) -> tuple[int, int]:
    """Process one payload alone; a payload that still fails is dead-lettered whole (no retry loop)."""
    try:
        return len(_process(store, [item], channels, settings)), 0
    except Exception as exc:  # noqa: BLE001
        log_failure(log, "recovering inbox %s failed; dead-lettered", exc, item.inbox_id)
        reason = f"recover: {type(exc).__name__}"
        dead = {
            "inbox_id": item.inbox_id,
            "channel": channels.get(item.inbox_id) or "unknown",
            "record_key": None,
            "location": "payload",
            "reason": reason,
            "payload": item.payload,
            "errors": [{"location": "pipeline", "message": reason}],
        }
        closed = repo.finish_many([dead], [(item.inbox_id, "failed", lambda _ids: {"errors": [reason]})])
        return 0, len(closed)


def recover_quietly(store, settings: Settings) -> RecoverStats | None:
    """Start-up recovery (`serve`, `ingest`): never stops the process from starting."""
    try:
        return recover(store, settings)
    except Exception as exc:  # noqa: BLE001 - a failed recovery is retried by the next start or `recover`
        log_failure(log, "start-up recovery of the inbox failed", exc)
        return None


def register(app, open_runtime) -> None:
    """`lienthong recover`."""
    import typer
    from rich.console import Console

    from adapters.i18n import _

    @app.command(
        "recover",
        help=_(
            "Finish or dead-letter inbox rows a crashed process left unfinished (archived, never "
            "committed). `serve` and `ingest` also do this when they start."
        ),
    )
    def recover_cmd(
        db: str = typer.Option(None, "--db", help=_("database URL")),
        older_than: float = typer.Option(
            300.0, "--older-than", help=_("only rows archived more than this many seconds ago")
        ),
    ) -> None:
        """Recover stuck inbox rows; one summary line; exit code 1 when some are left."""
        settings = Settings.from_env().with_(database_url=db)
        runtime = open_runtime(settings)
        stats = recover(runtime.store, runtime.settings, grace_seconds=older_than)
        Console().print(
            _(
                "{claimed} unfinished inbox row(s): {finished} finished, {dead} dead-lettered, {left} left",
                claimed=stats.claimed,
                finished=stats.finished,
                dead=stats.dead_lettered,
                left=len(stats.left),
            ),
            soft_wrap=True,
        )
        raise typer.Exit(code=1 if stats.left else 0)

"""Cross-hospital linking as a subscriber of the store's commit hooks.

Inside each transaction that writes Patients with a watched origin (ingest by default), their ids go
to the durable `identity_pending` queue, atomically with the data. After the commit they are linked
right away (`immediate`), or later by `drain()` (the MLLP listener does that from a background task so
ACKs never wait for record linkage). Pending work survives a crash: `drain()` at start-up finishes it.
"""

from __future__ import annotations

import logging
import threading

from fhir_server.identity.service import link_patient, link_patients
from fhir_server.logsafe import log_failure
from fhir_server.storage.base import Commit, Key

log = logging.getLogger(__name__)


class Linker:
    """Queues written Patients in their transaction and links them after commit (or on `drain`)."""

    def __init__(
        self, store, origins: frozenset[str] = frozenset({"ingest"}), immediate: bool = True
    ) -> None:
        self.store = store
        self.origins = origins
        self.immediate = immediate
        self._lock = threading.Lock()

    def attach(self) -> Linker:
        """Subscribe to the store's flush and commit hooks."""
        self.store.on_flush(self._queue)
        self.store.on_commit(self._committed)
        return self

    def _queue(self, tx, keys: list[Key]) -> None:
        if tx.origin not in self.origins:
            return
        ids = [res_id for res_type, res_id in keys if res_type == "Patient"]
        if ids:
            self.store.identity.queue_pending(tx, ids)

    def _committed(self, commit: Commit) -> None:
        if not self.immediate or commit.origin not in self.origins:
            return
        ids = sorted(res_id for res_type, res_id in commit.written if res_type == "Patient")
        if ids:
            self.link(ids)

    def link(self, patient_ids: list[str]) -> None:
        """Link these Patients now; one bad record must not stop the others (then one at a time)."""
        try:
            link_patients(self.store, patient_ids)
            return
        except Exception as exc:
            log_failure(
                log, "identity linking of %d patients failed; retrying one by one", exc, len(patient_ids)
            )
        for pid in patient_ids:
            try:
                link_patient(self.store, pid)
            except Exception as exc:  # stays pending: the next drain (or `lienthong link --all`) retries
                log_failure(log, "identity linking failed for one patient", exc)

    def drain(self, batch: int = 500) -> int:
        """Link every pending Patient (after a crash, or for deferred linking); returns how many."""
        done = 0
        with self._lock:  # one drain at a time per process; other processes may drain concurrently
            while True:
                ids = self.store.identity.pending(batch)
                if not ids:
                    return done
                self.link(ids)
                left = set(self.store.identity.pending(batch))
                if left >= set(ids):  # nothing went through (every one failed): stop, retry later
                    return done
                done += len(set(ids) - left)

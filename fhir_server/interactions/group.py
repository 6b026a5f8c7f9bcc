"""Group commit: several transaction Bundles (one per source record) in ONE database transaction.

Adapters write a batch of files or messages this way: each Bundle stays atomic on its own (one that
fails is dropped and its error returned in its place) while the others commit together with one flush
and one commit. A concurrent writer of the same resources makes the whole group run again; when the
database itself refuses the group, each Bundle is retried in its own transaction.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fhir_server.errors import FhirError
from fhir_server.interactions.bundles import apply_transaction, transaction
from fhir_server.storage.base import (
    Key,
    Storage,
    StorageUnavailable,
    UnitOfWork,
    WriteConflict,
)

RETRIES = 4


@dataclass
class GroupStats:
    """Process-wide counters for /metrics: how often concurrent writers made a group run again or split."""

    retries: int = 0
    splits: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, retries: int = 0, splits: int = 0) -> None:
        """Count retries/splits (thread-safe: ingest batches commit from several threads)."""
        with self._lock:
            self.retries += retries
            self.splits += splits


STATS = GroupStats()


def explicit_keys(bundles: list[dict]) -> list[Key]:
    """(type, id) of the entries whose request URL names one resource ("Type/id")."""
    keys = []
    for bundle in bundles:
        for entry in bundle.get("entry") or ():
            url = ((entry.get("request") or {}).get("url") or "") if isinstance(entry, dict) else ""
            parts = url.split("?", 1)[0].split("/")
            if len(parts) == 2 and parts[0] and parts[1]:
                keys.append((parts[0], parts[1]))
    return keys


def commit_group(
    store: Storage,
    bundles: list[dict],
    validate: bool = True,
    written: set[Key] | None = None,
    origin: str = "ingest",
    integrity_policy: str = "strict",
    before_commit: Callable[[UnitOfWork, list[dict | FhirError]], None] | None = None,
) -> list[dict | FhirError]:
    """Apply transaction Bundles in one database transaction; one result (response or error) each.

    `written`, when given, collects the (type, id) of every resource that got a new version (unchanged
    re-sends are not in it). References are checked per Bundle as on the FHIR API; a Bundle may point
    at resources an earlier Bundle of the same group writes (its unit reads through the group's).
    `before_commit(unit, results)`, when given, runs inside the transaction after every Bundle was
    applied (again on each retry), so a caller's own bookkeeping (a broker worker closing its inbox
    rows) commits atomically with the data; it is not called when the group had to be split into one
    transaction per Bundle."""
    for attempt in range(RETRIES):
        results: list[dict | FhirError] = []
        try:
            with store.begin(origin) as tx:
                tx.prefetch(explicit_keys(bundles))  # one query for the whole group, not one per Bundle
                for bundle in bundles:
                    try:
                        with tx.child() as unit:
                            results.append(apply_transaction(unit, bundle, validate, integrity_policy))
                    except FhirError as exc:
                        results.append(exc)
                if before_commit is not None:
                    before_commit(tx, results)
            if written is not None:
                written.update(tx.written)
            return results
        except WriteConflict:
            # Another writer created or changed a resource of this group since we read it: the group
            # is redone (it will see their version), not split, which would cost a commit per Bundle.
            # Creates of shared resources (facilities, practitioners, patients seen by several
            # hospitals) make this common when hospitals push at the same time.
            STATS.add(retries=1)
            time.sleep(random.uniform(0, 0.002 * 2**attempt))
        except StorageUnavailable:
            raise  # nothing can be written now: the caller reports every record failed
        except FhirError:
            # Refused while the group's writes were flushed together (StorageRefused from the database,
            # or a value the index refuses): find the Bundle that carried it by going one by one.
            break
    STATS.add(splits=1)
    outcomes = [_one(store, bundle, validate, origin, integrity_policy) for bundle in bundles]
    if written is not None:  # one-by-one writes report no keys: count every written bundle's
        written.update(
            (e["resource"]["resourceType"], e["resource"]["id"])
            for b, o in zip(bundles, outcomes)
            if isinstance(o, dict)
            for e in b.get("entry", [])
            if (e.get("resource") or {}).get("id")
        )
    return outcomes


def _one(
    store: Storage, bundle: dict, validate: bool, origin: str, integrity_policy: str
) -> dict | FhirError:
    try:
        return transaction(store, bundle, validate, origin, integrity_policy)
    except FhirError as exc:
        return exc

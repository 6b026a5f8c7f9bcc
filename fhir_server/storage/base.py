"""The storage contract the rest of the server is written against; the SQL implementation is in `sql/`.

Upper layers (interactions, bundles, search, operations, identity) see a `Storage` and the
`UnitOfWork`s it opens, never a database connection: a second backend, or a test double, only has to
implement these Protocols. Everything here is plain data plus the two Protocols.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import orjson

from fhir_server.errors import FhirError
from fhir_server.search.page import CompartmentPage, CompartmentQuery, Page
from fhir_server.search.query import SearchRequest
from fhir_server.storage.snapshot import without_source_time
from fhir_server.timeutil import instant

T = TypeVar("T")
Key = tuple[str, str]  # (resource type, id)


@dataclass(slots=True)
class StoredResource:
    """One version of a resource as stored: JSON bytes with id and meta already set."""

    rid: int | None
    res_type: str
    res_id: str
    version: int
    last_updated: int
    deleted: bool
    content: bytes | None
    content_hash: str = ""

    @property
    def etag(self) -> str:
        """Weak ETag carrying the version id."""
        return f'W/"{self.version}"'

    @property
    def ref(self) -> str:
        """Relative reference "Type/id"."""
        return f"{self.res_type}/{self.res_id}"

    def as_dict(self) -> dict:
        """Parse the stored JSON (only where a caller really needs the structure)."""
        return orjson.loads(self.content) if self.content else {}


@dataclass(slots=True)
class HistoryEntry:
    """One row of a history listing: the version, how it was written, and its position for paging."""

    stored: StoredResource
    method: str
    position: int


@dataclass
class Commit:
    """What one committed unit of work wrote, handed to after-commit listeners."""

    written: set[Key] = field(default_factory=set)
    origin: str = "api"  # api | ingest | identity | ... : who asked for the write


class WriteConflict(FhirError):
    """Another transaction changed a resource between our read and our write (optimistic locking)."""

    def __init__(self, msg: str):
        super().__init__(409, FhirError.conflict(msg).outcome)


class StorageRefused(FhirError):
    """The database refused the unit of work for a reason other than a concurrent writer (a value too
    long for an index, a character it cannot store...). The message names the error class only: the
    database's own text can quote patient data."""

    def __init__(self, kind: str):
        super().__init__(
            422, FhirError.make(422, "processing", f"The database refused the data ({kind})").outcome
        )


class StorageUnavailable(FhirError):
    """The database could not be reached or dropped the connection: nothing was written, try again."""

    def __init__(self, kind: str):
        super().__init__(503, FhirError.make(503, "transient", f"Database unavailable ({kind})").outcome)


def content_hash(body: dict) -> str:
    """Hash of the resource ignoring server-managed meta, to detect no-op updates."""
    meta = body.get("meta")
    if "id" in body or (meta and ("versionId" in meta or "lastUpdated" in meta or "extension" in meta)):
        body = {k: v for k, v in body.items() if k != "id"}
        if isinstance(meta, dict):
            # The source's snapshot time is bookkeeping, not content (fhir_server/storage/snapshot.py).
            rest = {
                k: v for k, v in without_source_time(meta).items() if k not in ("versionId", "lastUpdated")
            }
            if rest:
                body["meta"] = rest
            else:
                body.pop("meta")
    return hashlib.sha256(_dumps(body, orjson.OPT_SORT_KEYS)).hexdigest()


def render(body: dict, res_id: str, version: int, last_updated: int) -> bytes:
    """Serialize the resource with server-managed id/meta, keeping the client's element order."""
    meta = dict(body.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(last_updated)
    out = {"resourceType": body["resourceType"], "id": res_id, "meta": meta}
    for key, value in body.items():
        if key not in out:
            out[key] = value
    return _dumps(out)


def _dumps(body: dict, option: int = 0) -> bytes:
    """JSON bytes of a resource, or StorageRefused when a value has no JSON form.

    Adapters can build values the REST API never parses (an integer past 64 bits from a vendor's
    amount field); refusing that one resource keeps a group commit's other Bundles going through."""
    try:
        return orjson.dumps(body, option=option)
    except TypeError:  # orjson.JSONEncodeError: its message can quote the value, so it is not kept
        raise StorageRefused("unserializable value") from None


class UnitOfWork(Protocol):
    """One database transaction of resource writes, reading its own staged writes."""

    written: list[Key]
    origin: str

    def prefetch(self, keys: Iterable[Key]) -> None:
        """Load the current rows of many resources in one round trip."""
        ...

    def current(self, res_type: str, res_id: str) -> StoredResource | None:
        """The latest version (possibly a delete marker) as seen inside this unit of work."""
        ...

    def put(
        self, body: dict, res_id: str, method: str, if_match: int | None = None, fresh_id: bool = False
    ) -> tuple[StoredResource, bool, bool]:
        """Stage a new version; returns (stored, created, changed). Identical content is a no-op."""
        ...

    def delete(self, res_type: str, res_id: str, if_match: int | None = None) -> StoredResource | None:
        """Stage a delete marker (412 if `if_match` is not the current version); None when there was
        nothing to delete."""
        ...

    def flush(self) -> None:
        """Write everything staged so far (searches in this unit of work see it afterwards)."""
        ...

    def find(self, res_type: str, params: list[tuple[str, str]]) -> list[str]:
        """Ids of current resources matching search criteria (conditional interactions)."""
        ...

    def search(
        self,
        res_type: str | None,
        req: SearchRequest,
        *,
        base_url: str,
        strict: bool = False,
        default_count: int = 50,
        types: list[str] | None = None,
    ) -> Page:
        """One page of a search, seeing this unit of work's flushed writes."""
        ...

    def vread(self, res_type: str, res_id: str, version: int) -> StoredResource | None:
        """One specific version."""
        ...

    def lock(self, key: str) -> None:
        """Serialize this unit of work with every other one taking the same key, until it ends."""
        ...

    def child(self) -> AbstractContextManager[UnitOfWork]:
        """A nested unit (one Bundle of a group commit): dropped alone if it fails, else merged."""
        ...

    def savepoint(self) -> AbstractContextManager[UnitOfWork]:
        """A unit written under a database savepoint (one batch entry): rolled back alone on failure."""
        ...


class Storage(Protocol):
    """Versioned FHIR resources with their search index."""

    def begin(self, origin: str = "api") -> AbstractContextManager[UnitOfWork]:
        """Open a unit of work; commit when the block ends, roll back on any exception."""
        ...

    def run(self, work: Callable[[UnitOfWork], T], retries: int = 8, origin: str = "api") -> T:
        """Run `work` in a unit of work, again (with backoff) when a concurrent writer got in the way."""
        ...

    def on_commit(self, listener: Callable[[Commit], None]) -> None:
        """Call `listener` after every commit that wrote something."""
        ...

    def on_flush(self, listener: Callable[[UnitOfWork, list[Key]], None]) -> None:
        """Call `listener` inside the transaction, after each flush, with the keys it wrote."""
        ...

    def read(self, res_type: str, res_id: str) -> StoredResource | None:
        """Current version (or delete marker) of one resource."""
        ...

    def read_is_ready(self) -> bool:
        """True when a read can start at once (an idle pooled connection): callers may then run it
        inline on an event loop instead of a worker thread."""
        ...

    def read_many(self, keys: Iterable[Key]) -> dict[Key, StoredResource]:
        """Current versions of many resources (missing ones are absent)."""
        ...

    def vread(self, res_type: str, res_id: str, version: int) -> StoredResource | None:
        """One specific version."""
        ...

    def history(
        self,
        res_type: str | None = None,
        res_id: str | None = None,
        since: int | None = None,
        before: int | None = None,
        count: int = 50,
        after: tuple[int, int] | None = None,
    ) -> list[HistoryEntry]:
        """Versions newest first; `after` = (last_updated, position) continues a page."""
        ...

    def history_count(
        self, res_type: str | None = None, res_id: str | None = None, since: int | None = None
    ) -> int:
        """Number of versions matching a history query."""
        ...

    def find(self, res_type: str, params: list[tuple[str, str]]) -> list[str]:
        """Ids of current resources matching search criteria."""
        ...

    def search(
        self,
        res_type: str | None,
        req: SearchRequest,
        *,
        base_url: str,
        strict: bool = False,
        default_count: int = 50,
        types: list[str] | None = None,
    ) -> Page:
        """One page of a type (or system) search."""
        ...

    def compartment(self, patient_ids: list[str], query: CompartmentQuery) -> CompartmentPage:
        """The Patient compartment of these Patients plus the resources it references (`$everything`)."""
        ...

    def iter_current(self, res_type: str, batch: int = 2000) -> Iterator[StoredResource]:
        """Every current, non-deleted resource of one type, streamed."""
        ...

    def analyze(self) -> None:
        """Refresh the query planner's statistics after a bulk load."""
        ...

    def reindex(self, res_type: str | None = None, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the search index rows of current resources; returns how many were indexed."""
        ...

    def count_current(self, res_type: str | None = None) -> int:
        """Number of current, non-deleted resources (of one type)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

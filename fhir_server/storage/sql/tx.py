"""The SQL unit of work: staged versions flushed with one bulk statement per table (COPY on PostgreSQL).

A Tx buffers the versions it writes and writes them all at flush, so a 100-entry Bundle costs a
handful of round trips. A child Tx stages one Bundle of a group commit on top of its parent; a
savepoint Tx writes one batch entry under a database savepoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

import orjson
from sqlalchemy import BigInteger, Engine, delete, text
from sqlalchemy.engine import Connection

from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.search.indexer import Indexer
from fhir_server.search.page import Page
from fhir_server.search.query import SearchRequest
from fhir_server.storage.base import Key, StoredResource, WriteConflict, content_hash, render
from fhir_server.storage.snapshot import resolve as snapshot_resolve
from fhir_server.storage.snapshot import source_time
from fhir_server.storage.sql.db import among, is_sqlite
from fhir_server.storage.sql.index_tables import ALL_TABLES, TABLES
from fhir_server.storage.sql.rows import (
    HISTORY_COLUMNS,
    Pending,
    chunks,
    copy_rows,
    current_rows,
    insert_resources,
    resource_row,
    update_resources,
)
from fhir_server.storage.sql.schema import resource_history
from fhir_server.storage.sql.search import SqlSearch
from fhir_server.timeutil import now_us


class Owner(Protocol):
    """What a Tx needs of the store that opened it."""

    engine: Engine
    indexer: Indexer
    searcher: SqlSearch

    def vread_on(self, conn: Connection, res_type: str, res_id: str, version: int) -> StoredResource | None:
        """One version, read on this connection."""
        ...

    def flushed(self, tx: Tx, keys: list[Key]) -> None:
        """Called after a flush wrote these keys."""
        ...


def check_if_match(current: StoredResource | None, if_match: int | None, res_type: str, res_id: str) -> None:
    """412 unless the resource's current version is the one the client said it changes."""
    if if_match is None:
        return
    have = current.version if current and not current.deleted else None
    if have != if_match:
        raise FhirError.precondition_failed(
            msg(
                "If-Match version {wanted} does not match current version {have} of {ref}",
                wanted=if_match,
                have=have,
                ref=f"{res_type}/{res_id}",
            )
        )


class Tx:
    """One database transaction of resource writes (a `UnitOfWork`); open one with `SqlStore.begin()`."""

    def __init__(self, store: Owner, conn: Connection, parent: Tx | None = None, origin: str = "api"):
        self.store = store
        self.conn = conn
        self.parent = parent
        self.origin: str = parent.origin if parent is not None else origin
        self.params_changed = False  # a SearchParameter was written: the registry changes after commit
        self._pending: dict[Key, Pending] = {}
        self._seen: dict[Key, StoredResource | None] = {}
        self.written: list[Key] = []  # (type, id) of every resource a flush wrote
        # The version each written key holds in the database now: rows this transaction inserted or
        # updated stay locked until commit, so no other writer can change them under us.
        self._flushed: dict[Key, StoredResource] = {}

    # -- reads (see this Tx's own writes) -------------------------------------------------------
    def prefetch(self, keys: Iterable[Key]) -> None:
        """Load current rows for many (type, id) keys in one query (no locks: see update_resources)."""
        if self.parent is not None:
            self.parent.prefetch(k for k in keys if k not in self._pending)
            return
        wanted = [k for k in set(keys) if k not in self._seen and k not in self._pending]
        for chunk in chunks(wanted, 500 if is_sqlite(self.store.engine) else 5000):
            found = current_rows(self.conn, chunk)
            for key in chunk:
                self._seen[key] = found.get(key)

    def current(self, res_type: str, res_id: str) -> StoredResource | None:
        """The latest version (possibly a delete marker) as seen inside this transaction."""
        key = (res_type, res_id)
        if key in self._pending:
            return self._pending[key].final
        if self.parent is not None:
            return self.parent.current(res_type, res_id)
        if key not in self._seen:
            self.prefetch([key])
        return self._seen[key]

    def flushed_content(self, keys: Iterable[Key]) -> dict[Key, bytes | None]:
        """Current content of the keys this transaction has flushed (None: deleted), without a query."""
        flushed = self._flushed
        return {k: (None if s.deleted else s.content) for k in keys if (s := flushed.get(k)) is not None}

    def vread(self, res_type: str, res_id: str, version: int) -> StoredResource | None:
        """One specific version (committed or flushed in this transaction)."""
        return self.store.vread_on(self.conn, res_type, res_id, version)

    def find(self, res_type: str, params: list[tuple[str, str]]) -> list[str]:
        """Ids of current resources matching search criteria, seeing what earlier units staged."""
        self._flush_ancestors()
        return self.store.searcher.find(self.conn, res_type, params)

    def _flush_ancestors(self) -> None:
        # Search runs in SQL, so the writes of the Bundles staged before this one in a group commit
        # must be in the database first: otherwise two Bundles of one group with the same
        # ifNoneExist would both create (the criteria lock only orders different transactions).
        root = self.parent
        while root is not None and root.parent is not None:
            root = root.parent
        if root is not None and root._pending:
            root.flush()

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
        """One page of a search inside this transaction (transaction/batch GET entries)."""
        self._flush_ancestors()
        return self.store.searcher.page(self.conn, res_type, req, base_url, strict, default_count, types)

    def lock(self, key: str) -> None:
        """Transaction-scoped advisory lock on a key (PostgreSQL); SQLite writers are serialized anyway."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})

    @contextmanager
    def child(self) -> Iterator[Tx]:
        """A nested unit staged on top of this one: merged at its flush, dropped if it raises."""
        unit = Tx(self.store, self.conn, parent=self)
        yield unit
        unit.flush()

    @contextmanager
    def savepoint(self) -> Iterator[Tx]:
        """A unit written under a database savepoint: its writes roll back alone if it raises."""
        self.flush()
        with self.conn.begin_nested():
            unit = Tx(self.store, self.conn, origin=self.origin)
            yield unit
            unit.flush()
        self.written.extend(unit.written)
        self._seen.update(unit._seen)
        self._flushed.update(unit._flushed)
        self.params_changed = self.params_changed or unit.params_changed

    # -- writes ---------------------------------------------------------------------------------
    def put(
        self,
        body: dict,
        res_id: str,
        method: str,
        if_match: int | None = None,
        fresh_id: bool = False,
    ) -> tuple[StoredResource, bool, bool]:
        """Write a new version of a resource; returns (stored, created, changed).

        `fresh_id` says the id was just generated by the server, so there is nothing to look up.
        """
        res_type = body["resourceType"]
        current = None if fresh_id else self.current(res_type, res_id)
        check_if_match(current, if_match, res_type, res_id)
        digest = content_hash(body)
        if current is not None and not current.deleted:
            if current.content_hash == digest:
                return current, False, False
            if source_time(body) is not None and current.content is not None:
                # A source snapshot: an older one must not overwrite newer data, identifiers add up.
                resolved = snapshot_resolve(body, orjson.loads(current.content))
                if resolved is None:
                    return current, False, False
                body, digest = resolved, content_hash(resolved)
                if current.content_hash == digest:
                    return current, False, False
        version = current.version + 1 if current else 1
        ts = now_us()
        stored = StoredResource(
            current.rid if current else None,
            res_type,
            res_id,
            version,
            ts,
            False,
            render(body, res_id, version, ts),
            digest,
        )
        self._record(current, stored, body, method)
        return stored, current is None or current.deleted, True

    def delete(self, res_type: str, res_id: str, if_match: int | None = None) -> StoredResource | None:
        """Mark a resource deleted (a new version); returns the delete marker or None if nothing to do."""
        current = self.current(res_type, res_id)
        check_if_match(current, if_match, res_type, res_id)
        if current is None or current.deleted:
            return None
        ts = now_us()
        marker = StoredResource(current.rid, res_type, res_id, current.version + 1, ts, True, None, "")
        self._record(current, marker, None, "DELETE")
        return marker

    def _record(
        self, before: StoredResource | None, stored: StoredResource, body: dict | None, method: str
    ) -> None:
        key = (stored.res_type, stored.res_id)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = Pending(before, stored, body)
        pending.final, pending.body = stored, body
        pending.history.append((stored, method))

    # -- flush ----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write all buffered versions: current rows, history rows, index rows."""
        if self.parent is not None:
            self._merge_into_parent()
            return
        if not self._pending:
            return
        pendings = list(self._pending.values())
        self._pending = {}
        conn = self.conn
        # Key order: two writers inserting overlapping sets wait on each other in the same order
        # (ON CONFLICT waits for the other's commit), so they cannot deadlock.
        new = sorted(
            (p for p in pendings if p.final.rid is None), key=lambda p: (p.final.res_type, p.final.res_id)
        )
        if new:
            rids = insert_resources(conn, [resource_row(p.final) for p in new])
            raced = [p for p in new if (p.final.res_type, p.final.res_id) not in rids]
            if raced:
                self._absorb_identical_creates(raced)
                dropped = {id(p) for p in raced}
                new = [p for p in new if id(p) not in dropped]
                pendings = [p for p in pendings if id(p) not in dropped]
            for p in new:
                p.final.rid = rid = rids[(p.final.res_type, p.final.res_id)]
                for stored, _ in p.history:
                    stored.rid = rid
        new_ids = {id(p) for p in new}
        old = [p for p in pendings if id(p) not in new_ids]
        if old:
            update_resources(conn, sorted(old, key=lambda p: p.final.rid or 0))
        copy_rows(
            conn,
            resource_history,
            [
                (p.final.rid, s.res_type, s.res_id, s.version, s.last_updated, s.deleted, method, s.content)
                for p in pendings
                for s, method in p.history
            ],
            HISTORY_COLUMNS,
        )
        self._write_index(pendings, [p.final.rid for p in old if p.final.rid is not None])
        keys = [(p.final.res_type, p.final.res_id) for p in pendings]
        for p, key in zip(pendings, keys):
            self._seen[key] = self._flushed[key] = p.final
        self.written.extend(keys)
        self.store.flushed(self, keys)

    def _absorb_identical_creates(self, raced: list[Pending]) -> None:
        """Accept resources another writer created since our read when theirs is exactly what we were
        creating (same content, version 1): the outcome is the same whichever write came first, so
        ours becomes a no-op. Anything else is a real conflict and the unit of work runs again."""
        keys = [(p.final.res_type, p.final.res_id) for p in raced]
        theirs = current_rows(self.conn, keys)
        for p, key in zip(raced, keys):
            other = theirs.get(key)
            same = (
                other is not None
                and not other.deleted
                and len(p.history) == 1
                and other.version == p.final.version
                and other.content_hash == p.final.content_hash
            )
            if not same:
                raise WriteConflict(f"{key[0]}/{key[1]} was created by a concurrent writer")
            self._seen[key] = other

    def _merge_into_parent(self) -> None:
        assert self.parent is not None
        staged = self.parent._pending
        for key, p in self._pending.items():
            if key in staged:
                staged[key].final, staged[key].body = p.final, p.body
                staged[key].history.extend(p.history)
            else:
                staged[key] = p
        self._pending = {}

    def _write_index(self, pendings: list[Pending], replaced_rids: list[int]) -> None:
        indexer = self.store.indexer
        # PostgreSQL takes all rids as one array; SQLite's IN lists stay within its variable limit.
        size = 500 if is_sqlite(self.store.engine) else max(1, len(replaced_rids))
        for table in ALL_TABLES:
            for chunk in chunks(replaced_rids, size):
                self.conn.execute(delete(table).where(among(self.conn, table.c.rid, chunk, BigInteger())))
        batches: dict[str, list[tuple]] = {}
        for p in pendings:
            if p.final.deleted or p.body is None or p.final.rid is None:
                continue
            for kind, rows in indexer.tuples(p.final.rid, p.final.res_type, p.body).items():
                batches.setdefault(kind, []).extend(rows)
        for kind, rows in batches.items():
            copy_rows(self.conn, TABLES[kind], rows)

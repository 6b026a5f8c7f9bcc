"""Per-process caches of the clinician page: the page model per record version, parsed resources per version.

The record's key is a summary of the rows the page reads — (count, sum of rids, sum of versions, max
lastUpdated) — computed by the database in one aggregate row (`CompartmentQuery(summary=True)`), plus the
link set. Any write by any process changes it: an edit or a deletion bumps a version (a deletion also drops
the row), a new row adds its rid and its newer lastUpdated, a new identity link changes the link set, and an
edited Organization or Practitioner is one of the rows. So a cached model is never served stale: the cache
only saves the parsing and building, never the check. lastUpdated is in the key because rids restart after
a database is re-created.

When the record did change, the resources that did not are taken parsed from a bounded cache keyed by
(type, id, version, lastUpdated), so one new lab parses one resource, not two thousand.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from fhir_server.search.page import CompartmentPage


def fingerprint(page: CompartmentPage) -> tuple:
    """The freshness key of a result: the database's summary, or the same summary computed from its rows."""
    summary = page.summary
    if summary is None:
        rows = page.rows
        summary = (
            len(rows),
            sum(r.rid for r in rows),
            sum(r.version for r in rows),
            max((r.last_updated for r in rows), default=0),
        )
    return (summary, tuple(page.patient_ids))


class ViewCache:
    """A small thread-safe LRU map (the page is built in the server's thread pool)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any | None:
        """The cached value, marked as recently used, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: Any) -> None:
        """Store a value, dropping the least recently used ones beyond the size."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


# One cache per store object: two databases in one process (tests, tools) never share entries.
_caches: weakref.WeakKeyDictionary[object, ViewCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


class ParsedResources:
    """Parsed resources by (type, id, version, lastUpdated), bounded; the dicts are shared, never mutated."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple, dict] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # resources parsed so far (the rest came from the cache)

    def parse(self, page: CompartmentPage) -> list[dict]:
        """The rows of a page as dicts, parsing only the row versions not seen before."""
        keys = [(row.res_type, row.res_id, row.version, row.last_updated) for row in page.rows]
        with self._lock:
            get, touch = self._items.get, self._items.move_to_end
            out = [get(key) for key in keys]
            for key, res in zip(keys, out, strict=True):
                if res is not None:
                    touch(key)
        # Parsed outside the lock: other requests' pages are not held up by this one's new rows.
        fresh = [(i, orjson.loads(row.content)) for i, row in enumerate(page.rows) if out[i] is None]
        if fresh:
            with self._lock:
                self.loads += len(fresh)
                for i, res in fresh:
                    out[i] = self._items[keys[i]] = res
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return out  # type: ignore[return-value]


_parsed: weakref.WeakKeyDictionary[object, ParsedResources] = weakref.WeakKeyDictionary()
C = TypeVar("C", ViewCache, ParsedResources)


def _of_store(
    caches: weakref.WeakKeyDictionary, make: Callable[[int], C], store: object, size: int
) -> C | None:
    """The cache of this store in `caches`, made on first use and resized to `size` (None: caching off)."""
    if size <= 0:
        return None
    with _caches_lock:
        cache = caches.get(store)
        if cache is None:
            cache = caches[store] = make(size)
        cache.size = size
        return cache


def parsed_for(store: object, size: int) -> ParsedResources | None:
    """The parsed-resource cache of this store (None when caching is off)."""
    return _of_store(_parsed, ParsedResources, store, size)


def drop_models(store: object) -> None:
    """Forget this store's page models but keep its parsed resources: the next view rebuilds as after a write."""
    with _caches_lock:
        cache = _caches.get(store)
    if cache is not None:
        with cache._lock:
            cache._items.clear()


def cache_for(store: object, size: int) -> ViewCache | None:
    """The view cache of this store (None when caching is off)."""
    return _of_store(_caches, ViewCache, store, size)

"""A per-process cache of the clinician page model, keyed by a fingerprint of the patient's record.

The fingerprint is the (kind, rid, version, lastUpdated) of every resource the page reads, from one
query that carries no content. Any write by any process (a new lab, an edited drug, a deleted visit, a
new identity link, an edited Organization) changes it, so a cached model is never served stale: the
cache only saves the parsing and building, never the check. `lastUpdated` is in the key because rids
restart after a database is re-created.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from array import array
from collections import OrderedDict
from typing import Any

from fhir_server.search.page import CompartmentPage


def fingerprint(page: CompartmentPage) -> bytes:
    """A digest of what identifies every row's current version (not its content)."""
    numbers = array("q")
    for row in page.rows:
        numbers.extend((row.kind, row.rid, row.version, row.last_updated))
    digest = hashlib.blake2b(numbers.tobytes(), digest_size=20)
    digest.update("\x1f".join(page.patient_ids).encode())
    return digest.digest()


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


def cache_for(store: object, size: int) -> ViewCache | None:
    """The view cache of this store (None when caching is off)."""
    if size <= 0:
        return None
    with _caches_lock:
        cache = _caches.get(store)
        if cache is None:
            cache = _caches[store] = ViewCache(size)
        cache.size = size
        return cache

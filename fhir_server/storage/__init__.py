"""Versioned resource storage: the `Storage` contract (base.py) and its SQL implementation (sql/)."""

from fhir_server.storage.base import (
    Commit,
    HistoryEntry,
    Storage,
    StorageRefused,
    StorageUnavailable,
    StoredResource,
    UnitOfWork,
    WriteConflict,
)
from fhir_server.storage.sql.store import SqlStore, open_store

__all__ = [
    "Commit",
    "HistoryEntry",
    "SqlStore",
    "Storage",
    "StorageRefused",
    "StorageUnavailable",
    "StoredResource",
    "UnitOfWork",
    "WriteConflict",
    "open_store",
]

"""Whose record a write changed (issue 13): the patients of the version a write replaced or deleted.

The request middleware reads the stored version before a single-resource DELETE/PUT; writes inside a
transaction or batch Bundle, conditional deletes and updates name their resources only inside the
store. A flush hook therefore looks at the version each write replaced (in the same transaction) and
adds its patients to the collector the middleware opened for this request (a context variable, so
nothing leaks across requests; writes outside an audited request pay nothing).
"""

from __future__ import annotations

from contextvars import ContextVar, Token

import orjson

from fhir_server.audit.events import _patient_refs_of_resource, stored_patients

_collector: ContextVar[dict[str, None] | None] = ContextVar("lienthong_audit_prior", default=None)
_SKIP = frozenset({"AuditEvent"})


def open_collector() -> tuple[dict[str, None], Token]:
    """Start collecting the patients of replaced versions for the current request."""
    sink: dict[str, None] = {}
    return sink, _collector.set(sink)


def close_collector(token: Token) -> None:
    """Stop collecting (the request is done)."""
    _collector.reset(token)


def attach_prior(store) -> None:
    """Register the flush hook on a store (once)."""
    if getattr(store, "_audit_prior", False) or not hasattr(store, "on_flush"):
        return

    def note(tx, keys) -> None:
        sink = _collector.get()
        if sink is None:
            return
        for res_type, res_id in keys:
            if res_type in _SKIP:
                continue
            current = tx.current(res_type, res_id)
            if current is None or current.version <= 1:
                continue  # a create replaced nothing
            if res_type == "Patient":
                sink[f"Patient/{res_id}"] = None
                continue
            before = tx.vread(res_type, res_id, current.version - 1)
            if before is not None and not before.deleted:
                _patient_refs_of_resource(before.as_dict(), sink)

    store.on_flush(note)
    store._audit_prior = True


_MAX_TARGETS = 200  # a refused Bundle's reads for the audit are bounded


def refused_bundle_patients(store, body: bytes) -> list[str]:
    """Patients of the stored resources a refused or failed Bundle tried to change or delete (nothing was
    written, so the flush hook saw nothing): DELETE, PUT and PATCH entries addressed as Type/id."""
    try:
        bundle = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return []
    if not isinstance(bundle, dict) or not isinstance(bundle.get("entry"), list):
        return []
    found: dict[str, None] = {}
    targets = 0
    for entry in bundle["entry"]:
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or request.get("method") not in ("DELETE", "PUT", "PATCH"):
            continue
        url = str(request.get("url", "")).split("?", 1)[0].strip("/")
        parts = url.split("/")
        if len(parts) != 2 or not all(parts):
            continue  # conditional forms name no id: nothing stored to read
        targets += 1
        if targets > _MAX_TARGETS:
            break
        if parts[0] == "Patient":
            found[f"Patient/{parts[1]}"] = None
        else:
            found.update(dict.fromkeys(stored_patients(store, parts[0], parts[1])))
    return list(found)

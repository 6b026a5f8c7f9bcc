"""AuditEvents are append-only: no update, patch or delete through the API, nor inside a Bundle.

Two layers: explicit routes answer PATCH/DELETE (and conditional PUT) on AuditEvent with 405 before the REST
routes see them, and a storage flush hook refuses any AuditEvent version after the first (or a delete
marker) written by anything but the audit writer, which also covers transaction/batch entries.
"""

from __future__ import annotations

from fastapi import APIRouter

from fhir_server.errors import FhirError
from fhir_server.i18n import msg

router = APIRouter(include_in_schema=False)


def _refused() -> FhirError:
    err = FhirError.make(405, "not-supported", msg("AuditEvent resources cannot be changed or deleted"))
    err.headers["Allow"] = "GET, POST"
    return err


# PUT of a new id is a create (official examples are loaded that way); PUT over a stored AuditEvent is
# refused by the flush check below, which sees the version it would replace.
@router.patch("/AuditEvent/{res_id}")
@router.delete("/AuditEvent/{res_id}")
@router.put("/AuditEvent")
@router.delete("/AuditEvent")
async def refuse_change(res_id: str | None = None) -> None:
    """update, patch, delete and their conditional forms are refused on AuditEvent."""
    raise _refused()


def attach_guard(store) -> None:
    """Refuse (in the writing transaction) any change of a stored AuditEvent not made by the audit writer."""
    if getattr(store, "_audit_guarded", False) or not hasattr(store, "on_flush"):
        return

    def check(tx, keys) -> None:
        if tx.origin == "audit":
            return
        for res_type, res_id in keys:
            if res_type != "AuditEvent":
                continue
            current = tx.current(res_type, res_id)
            if current is not None and (current.deleted or current.version > 1):
                raise _refused()

    store.on_flush(check)
    store._audit_guarded = True

"""`$outbox` and `$outbox-ack`: the changes a central hub pulls from this node (system level).

GET [base]/$outbox?_count=N — a `history` Bundle of the resources changed since the hub's last
acknowledgement, oldest change first: each entry holds the CURRENT version (PUT) or a delete marker
(DELETE), and its outbox position in an extension. POST [base]/$outbox-ack with a Parameters of
`ack` values "Type/id@seq" forgets what the hub has committed. Unacknowledged changes are sent again
on the next pull (the hub's writes are idempotent). Only filled when LIENTHONG_OUTBOX=true.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.body import json_body
from fhir_server.api.deps import Store
from fhir_server.api.responses import base_url, fhir_json
from fhir_server.errors import FhirError
from fhir_server.operations.registry import Operation
from fhir_server.timeutil import instant

router = APIRouter()
OPERATION = Operation(
    "outbox",
    "http://lienthong.vn/fhir/OperationDefinition/outbox",
    router,
    resource_type=None,
    level="system",
)
SEQ_URL = "http://lienthong.vn/fhir/StructureDefinition/outbox-seq"


def _changes(store, base: str, count: int) -> dict:
    pending = store.outbox.pending(count)
    current = store.read_many((t, i) for t, i, _ in pending)
    entries = []
    for res_type, res_id, seq in pending:
        stored = current.get((res_type, res_id))
        if stored is None:
            continue  # never committed (rolled back after the row? cannot happen) — nothing to send
        entry: dict = {
            "extension": [{"url": SEQ_URL, "valueDecimal": seq}],
            "fullUrl": f"{base}/{res_type}/{res_id}",
            "request": {"method": "DELETE" if stored.deleted else "PUT", "url": f"{res_type}/{res_id}"},
            "response": {"status": "200", "etag": stored.etag, "lastModified": instant(stored.last_updated)},
        }
        if not stored.deleted:
            entry["resource"] = stored.as_dict()
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}


@router.get("/$outbox")
async def outbox(request: Request, store: Store, _count: int = 500) -> Response:
    """The oldest changes not yet acknowledged by the hub."""
    count = max(1, min(_count, 5000))
    return fhir_json(await run_in_threadpool(_changes, store, base_url(request), count))


def _acks(body: object) -> list[tuple[str, str, int]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError.bad_request("Body must be a Parameters resource with 'ack' values Type/id@seq")
    out = []
    for p in body.get("parameter") or []:
        value = p.get("valueString") if p.get("name") == "ack" else None
        ref, _, seq = (value or "").partition("@")
        res_type, _, res_id = ref.partition("/")
        if not (res_type and res_id and seq.isdigit()):
            raise FhirError.bad_request(
                f"ack must be Type/id@seq, not {value!r}", expression="Parameters.parameter"
            )
        out.append((res_type, res_id, int(seq)))
    return out


@router.post("/$outbox-ack")
async def outbox_ack(request: Request, store: Store) -> Response:
    """Forget changes the hub has committed."""
    acks = _acks(await json_body(request))
    removed = await run_in_threadpool(store.outbox.ack, acks)
    return fhir_json(
        {"resourceType": "Parameters", "parameter": [{"name": "removed", "valueInteger": removed}]}
    )

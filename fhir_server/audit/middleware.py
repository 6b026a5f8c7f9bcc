"""ASGI middleware that records every FHIR access (and clinician-view page) in the audit trail.

Pure ASGI (no BaseHTTPMiddleware): it reserves a queue slot before the request runs, keeps a reference
to the response body chunks, and hands the record to the writer thread after the response is sent.
It sits outside authentication, so refused requests (401/403) are recorded too; the caller is read
from `request.state.principal` (scope["state"]["principal"]) once the inner layers have run.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from starlette.concurrency import run_in_threadpool

from fhir_server.audit.events import (
    Access,
    AccessRecord,
    classify,
    classify_ingest,
    stored_patients,
)
from fhir_server.audit.prior import (
    attach_prior,
    close_collector,
    open_collector,
    refused_bundle_patients,
)
from fhir_server.audit.trail import AuditTrail
from fhir_server.errors import FhirError
from fhir_server.i18n import accept_language, msg

_WRITES = frozenset({"POST", "PUT", "PATCH"})
# Bodies larger than this are not kept for patient extraction (the path and query still are).
MAX_CAPTURE = 16 * 1024 * 1024


def _ui_access(method: str, path: str, query: str) -> Access | None:
    """The clinician view's pages: the patient record page is a read of that Patient."""
    if method != "GET":
        return None
    if path.startswith("/ui/patient/"):
        rid = path[len("/ui/patient/") :].split("/", 1)[0]
        return Access("read", "R", "Patient", rid) if rid else None
    if path == "/ui" and query:
        return Access("search-type", "E", "Patient")
    return None


class AuditMiddleware:
    """Record each patient-data access as an AuditEvent (see fhir_server/audit/trail.py)."""

    def __init__(self, app, trail: AuditTrail, base_path: str) -> None:
        self.app = app
        self.trail = trail
        self.base_path = base_path
        attach_prior(trail.store)  # Bundle entries and conditional writes name the patients they change

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        access = (
            classify(method, path, self.base_path)
            or _ui_access(method, path, query)
            or classify_ingest(method, path)
        )
        if access is None:
            await self.app(scope, receive, send)
            return
        if not self.trail.try_reserve():
            ok = False
            if self.trail.overflow == "block":
                ok = await run_in_threadpool(self.trail.reserve)
            if not ok:
                self.trail.note_refused()
                await _unavailable(scope, send)
                return
        recorded = datetime.now(UTC)
        before: list[str] = []
        if (
            access.action in ("U", "D")
            and access.resource_id
            and access.resource_type not in (None, "Patient")
        ):
            # After a delete (or an update moving it) the resource no longer names its patient: read the
            # stored version first, so the event says whose record was changed.
            before = await run_in_threadpool(
                stored_patients, self.trail.store, access.resource_type, access.resource_id
            )
        status = [500]
        is_json = [False]
        chunks: list[bytes] = []
        size = [0]

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                for key, value in message.get("headers", ()):
                    if key.lower() == b"content-type":
                        is_json[0] = b"json" in value
            elif message["type"] == "http.response.body" and is_json[0]:
                body = message.get("body", b"")
                size[0] += len(body)
                if size[0] <= MAX_CAPTURE:
                    chunks.append(body)
                else:
                    is_json[0] = False
                    chunks.clear()
            await send(message)

        sent: list[bytes] = []
        sent_size = [0]

        async def keep_request() -> dict:
            # writes: keep the body sent, to name the patients it touches
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                sent_size[0] += len(body)
                if sent_size[0] <= MAX_CAPTURE:
                    sent.append(body)
                else:
                    sent.clear()
            return message

        replaced: dict[str, None] = {}
        token = None
        if method in _WRITES or method == "DELETE":
            replaced, token = open_collector()
        try:
            await self.app(scope, keep_request if method in _WRITES else receive, capture)
        finally:
            if token is not None:
                close_collector(token)
            before = [*before, *replaced]
            if access.subtype == "transaction" and status[0] >= 400 and sent:
                # refused or rolled back: nothing was written, so read what the entries aimed at
                before += await run_in_threadpool(refused_bundle_patients, self.trail.store, b"".join(sent))
            principal = (scope.get("state") or {}).get("principal")
            client = scope.get("client")
            self.trail.submit(
                AccessRecord(
                    access=access,
                    recorded=recorded,
                    status=status[0],
                    query=query,
                    address=client[0] if client else None,
                    subject=getattr(principal, "subject", None) or None,
                    facility=getattr(principal, "facility", None),
                    method=method,
                    body=b"".join(chunks),
                    body_json=is_json[0],
                    request_body=b"".join(sent),
                    extra_patients=before,
                )
            )


async def _unavailable(scope, send) -> None:
    """503 OperationOutcome: the audit queue is full, so the access is refused rather than unrecorded."""
    lang = "en"
    for key, value in scope.get("headers", ()):
        if key == b"accept-language":
            lang = accept_language(value.decode("latin-1"))
    err = FhirError.make(
        503, "transient", msg("Audit trail is busy; the request was not served, retry shortly")
    )
    body = orjson.dumps(err.localized(lang))
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/fhir+json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

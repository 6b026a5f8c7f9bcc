"""The access gate: one ASGI middleware that authenticates every request and enforces the scopes.

Everything goes through here, so the rules hold for every route at once (REST, search, history,
operations, each Bundle entry, POST _search, ingest, dead letters, /metrics, /docs, the UI). Only the
CapabilityStatement, the SMART discovery document, the token endpoint and /healthz are public.
The verified caller is put on `request.state.principal` for the routes (and the audit) to read.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from fhir_server.api.responses import error_response, request_lang
from fhir_server.auth.facility import belongs_to
from fhir_server.auth.policy import Access, Plan, check_fhir, classify, forbidden
from fhir_server.auth.tokens import AuthConfig, Principal, unauthorized, verify_token
from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.search.compartment import patient_compartment
from fhir_server.storage.base import Storage

PUBLIC_PATHS = (
    "/healthz",
    "/.well-known/smart-configuration",
    "/auth/token",
    "/auth/revoke",  # authenticated as a client (RFC 7009), not with a bearer token
    "/auth/jwks",
    "/auth/authorize",  # the clinician signs in on this page: no token yet
    "/.well-known/openid-configuration",
)
_OWNER_PATCH_PATHS = ("/meta", "/identifier", "/managingOrganization", "/serviceProvider", "/custodian")
_BODY_METHODS = ("POST", "PUT", "PATCH")
_CACHE_SIZE = 4096


class AuthGate:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it costs per request and hides the body)."""

    def __init__(
        self,
        app,
        base_path: str,
        store: Storage | None,
        configs: Callable[[], Sequence[AuthConfig]],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.base = base_path.rstrip("/")
        self.store = store
        self.configs = configs
        self.max_body = max_body_bytes
        # Verified tokens by their exact text, until they expire: an ES384 signature check costs ~0.9 ms
        # of CPU, paid once per token instead of once per request. Bounded; oldest dropped first.
        self._verified: OrderedDict[str, Principal] = OrderedDict()

    def is_public(self, path: str) -> bool:
        """Paths anyone may call: discovery, the token endpoint, liveness."""
        return (
            path in PUBLIC_PATHS
            or path == f"{self.base}/metadata"
            or path == f"{self.base}/.well-known/smart-configuration"
        )

    def is_fhir(self, path: str) -> bool:
        """Whether a path is under the FHIR base."""
        return path == self.base or path.startswith(self.base + "/")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self.is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        if _is_ui(scope["path"]) and not _header(scope, b"authorization"):
            await self.app(scope, receive, send)  # a browser: the clinician view's own login (UiGate)
            return
        try:
            principal = self._authenticate(scope)
            scope.setdefault("state", {})["principal"] = principal
            body = b""
            # Only FHIR requests need their body checked; ingest uploads stream on untouched.
            buffered = scope["method"] in _BODY_METHODS and self.is_fhir(scope["path"])
            if buffered:
                body = await self._read_body(receive)
            blind = await self._authorize(scope, principal, body)
            body = scope.pop("lienthong.body", body)
        except FhirError as exc:
            response = error_response(exc, request_lang(Request(scope)))
            await response(scope, receive, send)
            return
        replay = _replay(body) if buffered else receive
        await self.app(scope, replay, _blind_send(send) if blind else send)

    # -- authentication ----------------------------------------------------------------------------
    def _authenticate(self, scope) -> Principal:
        header = _header(scope, b"authorization")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise unauthorized(msg("Missing bearer token (Authorization: Bearer <JWT>)"))
        token = token.strip()
        cached = self._verified.get(token)
        if cached is not None and cached.expires is not None and cached.expires > time.time():
            return cached
        principal = verify_token(token, self.configs())
        if principal.expires is not None:
            self._verified[token] = principal
            if len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal

    async def _read_body(self, receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise FhirError.make(
                    413,
                    "too-costly",
                    msg("Request body exceeds the limit of {limit} bytes", limit=self.max_body),
                )
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    # -- authorization -----------------------------------------------------------------------------
    async def _authorize(self, scope, principal: Principal, body: bytes) -> bool:
        """Check (and narrow) the request in place; True when error answers must not echo stored data."""
        path: str = scope["path"]
        policy = principal.policy
        if not self.is_fhir(path):
            self._non_fhir(path, scope["method"], principal)
            return False
        segments = [s for s in path[len(self.base) :].split("/") if s]
        method = scope["method"]
        params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        access = classify(method, segments)
        if access.kind == "bundle":
            return await self._bundle(scope, principal, body)
        if method == "POST" and access.kind in ("search", "system-search"):
            params = params + _form_pairs(scope, body)
            # POST _search is GET search: run it as one, so every check below sees the same thing.
            scope["method"] = "GET"
            scope["path"] = f"{self.base}/{access.resource_type}" if access.resource_type else self.base
            scope["raw_path"] = scope["path"].encode()
            scope["lienthong.body"] = b""
            _set_header(scope, b"content-type", None)
            _set_header(scope, b"content-length", None)
            scope["query_string"] = urlencode(params).encode()
        if access.kind == "everything" and method == "POST":
            _refuse_body_types(policy, body)
            params = params + _body_patient(body)
        plan = check_fhir(policy, access, params, principal.facility, bool(_header(scope, b"if-none-exist")))
        if plan.rewritten:
            kept = [
                (k, v)
                for k, v in plan.params
                if not (access.kind == "everything" and k == "patient" and method == "POST")
            ]
            scope["query_string"] = urlencode(kept).encode()
        doc = _json(body) if plan.facility_new else None
        resource = doc if isinstance(doc, dict) else None
        await self._lookups(principal, access, plan, resource)
        if access.kind == "patch" and principal.facility:
            _refuse_owner_patch(body)
        if plan.read_blind:
            _set_header(scope, b"prefer", b"return=minimal")
        return plan.read_blind

    def _non_fhir(self, path: str, method: str, principal: Principal) -> None:
        policy = principal.policy
        if principal.patient or not policy.has_any():
            raise forbidden(msg("This path needs a system or user scope"))
        if path in ("/metrics", "/openapi.json") or path.startswith(("/docs", "/redoc")):
            return
        if path.startswith(("/ingest", "/qd130/")):
            ok = (
                policy.can_all("s")
                if method in ("GET", "HEAD")
                else policy.can_all("c") and policy.can_all("u")
            )
        elif path.startswith("/ui"):
            ok = policy.can_all("r")
        else:
            ok = all(policy.can_all(a) for a in "cruds")
        if not ok:
            raise forbidden(msg("Token scopes do not allow this request"))

    async def _lookups(self, principal: Principal, access: Access, plan: Plan, resource: dict | None) -> None:
        """The checks that need stored data: patient compartment, facility of old and new content."""
        if self.store is None and (plan.compartment_check or plan.facility_stored or plan.facility_criteria):
            # a gate without a store (the federated hub) cannot prove these: refuse rather than guess
            raise forbidden(msg("Token scopes do not allow this request"))
        if plan.compartment_check is not None:
            rtype, rid = plan.compartment_check
            if not await run_in_threadpool(self._in_compartment, rtype, rid, principal.patient or ""):
                raise forbidden(msg("The resource is outside the patient context of the token"))
        facility = principal.facility
        if not facility:
            return
        if plan.facility_new and (resource is None or not belongs_to(resource, facility)):
            raise forbidden(
                msg("A client of facility {code} writes only resources of that facility", code=facility)
            )
        keys: list[tuple[str, str]] = []
        if plan.facility_stored is not None:
            keys.append(plan.facility_stored)
        if plan.facility_criteria is not None:
            rtype, criteria = plan.facility_criteria
            ids = await run_in_threadpool(self.store.find, rtype, criteria)  # type: ignore[union-attr]
            keys += [(rtype, i) for i in ids]
        for rtype, rid in keys:
            stored = await run_in_threadpool(self.store.read, rtype, rid)  # type: ignore[union-attr]
            if stored is not None and not belongs_to(stored.as_dict(), facility):
                raise forbidden(
                    msg("A client of facility {code} writes only resources of that facility", code=facility)
                )

    def _in_compartment(self, rtype: str, rid: str, patient: str) -> bool:
        assert self.store is not None
        if rtype == "Patient":
            return rid == patient
        params = patient_compartment().get(rtype)
        if not params:
            return True  # not patient data (Practitioner, Organization, Medication …)
        return any(self.store.find(rtype, [("_id", rid), (p, f"Patient/{patient}")]) for p in params)

    async def _bundle(self, scope, principal: Principal, body: bytes) -> bool:
        """Check a transaction/batch entry by entry; one refused entry refuses the whole Bundle."""
        bundle = _json(body)
        if not isinstance(bundle, dict):
            return False  # the route answers 400
        changed = False
        blind = False
        for index, entry in enumerate(bundle.get("entry") or []):
            request = entry.get("request") if isinstance(entry, dict) else None
            if not isinstance(request, dict):
                continue  # the route answers 400
            method = str(request.get("method", "")).upper()
            url = urlsplit(str(request.get("url", "")))
            segments = [s for s in url.path.split("/") if s]
            params = parse_qsl(url.query, keep_blank_values=True)
            access = classify(method, segments)
            try:
                if (
                    access.kind in ("bundle", "system-op", "everything")
                    or method == "POST"
                    and access.kind != "create"
                ):
                    raise forbidden(msg("This request is not allowed inside a Bundle"))
                plan = check_fhir(
                    principal.policy, access, params, principal.facility, bool(request.get("ifNoneExist"))
                )
                resource = entry.get("resource") if isinstance(entry.get("resource"), dict) else None
                await self._lookups(principal, access, plan, resource)
                if access.kind == "patch" and principal.facility:
                    _refuse_owner_patch(_binary_data(resource))
            except FhirError as exc:
                issue = (exc.outcome.get("issue") or [{}])[0]
                issue.setdefault("expression", [f"Bundle.entry[{index}]"])
                raise
            blind = blind or plan.read_blind
            if plan.rewritten:
                request["url"] = url.path + "?" + urlencode(plan.params)
                changed = True
        if blind:
            _set_header(scope, b"prefer", None)
        if changed:
            scope["lienthong.body"] = orjson.dumps(bundle)
            _set_header(scope, b"content-length", None)
        return blind


# -- helpers -----------------------------------------------------------------------------------
def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _set_header(scope, name: bytes, value: bytes | None) -> None:
    headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() != name]
    if value is not None:
        headers.append((name, value))
    scope["headers"] = headers


def _json(body: bytes) -> object:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _form_pairs(scope, body: bytes) -> list[tuple[str, str]]:
    if not body:
        return []
    if "application/x-www-form-urlencoded" not in _header(scope, b"content-type"):
        raise FhirError.make(
            415, "not-supported", msg("POST _search needs application/x-www-form-urlencoded")
        )
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def _parameters(body: bytes) -> list[dict]:
    doc = _json(body)
    if not isinstance(doc, dict):
        return []
    return [p for p in doc.get("parameter") or [] if isinstance(p, dict)]


def _refuse_body_types(policy, body: bytes) -> None:
    """POST $everything: a `_type` in the body must name only readable types (it cannot be narrowed)."""
    for p in _parameters(body):
        if p.get("name") == "_type":
            value = next((v for k, v in p.items() if k.startswith("value")), "")
            denied = [t for t in str(value).split(",") if t.strip() and not policy.reads(t.strip())]
            if denied:
                raise forbidden(
                    msg(
                        "{what} would return {types}, which the token may not read",
                        what="_type",
                        types=", ".join(denied),
                    )
                )


def _body_patient(body: bytes) -> list[tuple[str, str]]:
    out = []
    for p in _parameters(body):
        ref = p.get("valueReference")
        if p.get("name") == "patient" and isinstance(ref, dict):
            out.append(("patient", str(ref.get("reference", ""))))
    return out


def _refuse_owner_patch(body: bytes) -> None:
    ops = _json(body)
    for op in ops if isinstance(ops, list) else []:
        path = str(op.get("path", "")) if isinstance(op, dict) else ""
        if op.get("op") != "test" and path.startswith(_OWNER_PATCH_PATHS):
            raise forbidden(
                msg("A facility client may not patch the elements that say which facility owns a resource")
            )


def _binary_data(resource: dict | None) -> bytes:
    """The JSON Patch a Bundle PATCH entry carries as a Binary (b"" when it is not one: the route answers 400)."""
    if not resource or resource.get("resourceType") != "Binary":
        return b""
    try:
        return base64.b64decode(str(resource.get("data") or ""), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _blind_send(send):
    """Replace the body of error answers with a generic one: a caller that may not read the type must not
    learn stored values from them (e.g. a failed JSON Patch `test` echoes the stored value)."""
    held: dict | None = None

    async def wrapped(message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and message["status"] >= 400:
            held = message
            return
        if held is not None and message["type"] == "http.response.body":
            if message.get("more_body"):
                return
            err = FhirError.make(
                held["status"],
                "processing",
                msg(
                    "The request failed; details are hidden from a token that may not read this resource type"
                ),
            )
            payload = orjson.dumps(err.localized(None))
            headers = [(k, v) for k, v in held["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(payload)).encode()))
            await send({**held, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        await send(message)

    return wrapped


def _is_ui(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")

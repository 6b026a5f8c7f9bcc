"""SMART App Launch authorization endpoint (`/auth/authorize`): sign-in and consent for clinicians.

GET (or a POST without the consent form's fields, `authorize-post`) checks the request and shows a
Vietnamese sign-in + consent page; the consent form POSTs back here. A bad client or redirect URI is
shown on the page (never redirected: the URI is not trusted); every other error goes back to the
app's redirect_uri as `error=` (RFC 6749 §4.1.2.1). On success a one-time code (stored hashed in the
database, `authcode_lifetime` seconds) is sent to the redirect_uri with the `state`.

CSRF: the page sets a random cookie (path /auth/authorize, SameSite=Strict, HttpOnly) and repeats it
in the form; a POST whose two copies differ is refused. The request parameters are checked again on
POST, so a tampered hidden field is no more than a new request.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.deps import get_settings, get_store
from fhir_server.audit.signin import lookup_event
from fhir_server.auth.grants import CHALLENGE, narrow_scopes, needs_patient, secret_hash
from fhir_server.auth.smart import fhir_base
from fhir_server.errors import FhirError
from fhir_server.i18n import Localized, _, msg
from fhir_server.search.run import run_search
from fhir_server.storage.sql.auth import ClientRecord
from fhir_server.storage.sql.authcode import CodeGrant, authcode_repository
from fhir_server.ui.accounts import ADMIN_SCOPES, CLINICIAN_SCOPES
from fhir_server.ui.guarded import sign_in
from fhir_server.ui.pages import csrf_matches, new_csrf_token, reader_lang, render_page

CSRF_COOKIE = "lienthong_authorize"
PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "nonce",
)
_MAX_PARAM = 2048
_MAX_CANDIDATES = 10


@dataclass(frozen=True)
class AuthRequest:
    """A checked authorization request."""

    client: ClientRecord
    redirect_uri: str
    scopes: list[str]
    state: str
    code_challenge: str
    nonce: str | None
    params: dict


class _PageError(Exception):
    """An error shown on the page (the redirect_uri cannot be trusted)."""

    def __init__(self, text: Localized):
        super().__init__("authorize")
        self.text = text


class _Redirect(Exception):
    """An error sent back to the app's redirect_uri."""

    def __init__(self, redirect_uri: str, state: str, error: str, description: Localized):
        super().__init__(error)
        self.redirect_uri, self.state, self.error, self.description = redirect_uri, state, error, description


def check_request(params: dict, store, expected_aud: str) -> AuthRequest:
    """Validate client and redirect_uri (page errors), then the rest (redirected errors)."""
    if any(len(str(v)) > _MAX_PARAM for v in params.values()):
        raise _PageError(msg("The authorization request is invalid"))
    client_id = params.get("client_id", "")
    client = store.auth.client(client_id) if client_id else None
    app = authcode_repository(store).app(client_id) if client is not None else None
    if client is None or not client.enabled or app is None:
        raise _PageError(msg("Unknown or disabled client"))
    redirect_uri = params.get("redirect_uri") or (app.redirect_uris[0] if len(app.redirect_uris) == 1 else "")
    if redirect_uri not in app.redirect_uris:
        raise _PageError(msg("The redirect_uri is not registered for this client"))
    state = params.get("state", "")

    def fail(error: str, description: Localized) -> _Redirect:
        return _Redirect(redirect_uri, state, error, description)

    if params.get("response_type") != "code":
        raise fail("unsupported_response_type", msg("response_type must be code"))
    if not state:
        raise fail("invalid_request", msg("The state parameter is required"))
    if params.get("code_challenge_method") != "S256":
        raise fail(
            "invalid_request", msg("PKCE with code_challenge_method=S256 is required (plain is refused)")
        )
    if not CHALLENGE.match(params.get("code_challenge", "")):
        raise fail("invalid_request", msg("code_challenge must be a base64url SHA-256 (43 characters)"))
    scopes = params.get("scope", "").split()
    if not scopes:
        raise fail("invalid_scope", msg("The scope parameter is required"))
    # aud binds FHIR access to this server; a sign-in-only request (OpenID Connect) has no FHIR access.
    sign_in_only = all(s in ("openid", "profile", "fhirUser") for s in scopes)
    aud = params.get("aud", "")
    if (aud or not sign_in_only) and aud.rstrip("/") != expected_aud.rstrip("/"):
        raise fail("invalid_request", msg("aud must be this server's FHIR base URL"))
    return AuthRequest(
        client,
        redirect_uri,
        scopes,
        state,
        params["code_challenge"],
        params.get("nonce") or None,
        {k: params[k] for k in PARAMS if params.get(k)} | {"redirect_uri": redirect_uri},
    )


def _to_redirect(redirect_uri: str, values: dict) -> RedirectResponse:
    sep = "&" if urlsplit(redirect_uri).query else "?"
    return RedirectResponse(f"{redirect_uri}{sep}{urlencode(values)}", status_code=303, headers=_NO_STORE)


def _texts() -> dict[str, str]:
    return {
        "title": _("Sign in and authorize the app"),
        "asks": _("This app asks to act on your behalf with these permissions:"),
        "username": _("Username"),
        "password": _("Password"),
        "patient": _("Patient (CCCD or BHYT card number)"),
        "allow": _("Sign in and allow"),
        "deny": _("Deny"),
        "bad_login": _("Wrong username or password, or the account is disabled."),
        "locked": _("Too many failed sign-ins for this account or from this address. Try again later."),
        "no_patient": _("No patient has this identifier."),
        "many_patients": _("Several records carry this identifier; choose the patient."),
        "need_patient": _("Enter the patient's CCCD or BHYT card number."),
        "csrf": _("The form has expired or did not come from this site. Reload the page and try again."),
        "error_title": _("The authorization request cannot be served"),
    }


def _headers(redirect_uri: str | None) -> dict[str, str]:
    # form-action must allow the app's origin: browsers apply it to the redirect after the POST too.
    origin = ""
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        origin = f" {parts.scheme}://{parts.netloc}"
    return {
        **_NO_STORE,
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
        f"form-action 'self'{origin}; frame-ancestors 'none'; base-uri 'none'",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _page(
    request: Request,
    req: AuthRequest,
    error: str | None,
    status: int = 200,
    candidates: list[tuple[str, str]] | None = None,
    identifier: str = "",
) -> HTMLResponse:
    """The sign-in + consent form, with a fresh CSRF token in the form and the cookie."""
    token = new_csrf_token()
    response = render_page(
        request,
        "authorize.html",
        _texts,
        _headers(req.redirect_uri),
        status,
        app_name=req.client.name,
        scopes=req.scopes,
        params=req.params,
        ask_patient=needs_patient(req.scopes),
        csrf_token=token,
        error=error,
        candidates=candidates or [],
        identifier=identifier,
    )
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=1800,
        path="/auth/authorize",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _error_page(request: Request, text: Localized, status: int) -> HTMLResponse:
    message = text.render(reader_lang(request))
    return render_page(request, "authorize_error.html", _texts, _headers(None), status, message=message)


def _find_patients(store, base: str, identifier: str) -> list[tuple[str, str]]:
    """(id, label) of the patients carrying this identifier value (CCCD, BHYT card…): one record per
    hospital is usual for the same person, so the clinician picks among at most ten."""
    params = [("identifier", identifier), ("_count", str(_MAX_CANDIDATES))]
    bundle = orjson.loads(run_search(store, "Patient", params, base, max_count=_MAX_CANDIDATES))
    out = []
    for entry in bundle.get("entry", []):
        res = entry.get("resource") or {}
        name = (res.get("name") or [{}])[0]
        text = name.get("text") or " ".join([name.get("family", ""), *name.get("given", [])]).strip()
        out.append((str(res.get("id")), f"{text} · {res.get('birthDate', '')} · {res.get('id')}"))
    return out


def build_router() -> APIRouter:
    """The authorization endpoint (GET and POST)."""
    router = APIRouter(include_in_schema=False)

    async def _checked(request: Request, params: dict) -> AuthRequest | Response:
        try:
            return await run_in_threadpool(check_request, params, get_store(request), fhir_base(request))
        except _PageError as exc:
            return _error_page(request, exc.text, 400)
        except _Redirect as exc:
            return _deny(request, exc.redirect_uri, exc.state, exc.error, exc.description)

    @router.get("/auth/authorize")
    async def authorize(request: Request) -> Response:
        """Check the authorization request and show the sign-in + consent page."""
        checked = await _checked(request, dict(request.query_params))
        return checked if isinstance(checked, Response) else _page(request, checked, None)

    @router.post("/auth/authorize")
    async def consent(request: Request) -> Response:
        """The consent form (CSRF-checked), or an authorization request sent as a form (authorize-post)."""
        form = {k: str(v) for k, v in (await request.form()).items()}
        checked = await _checked(request, {k: form[k] for k in PARAMS if k in form})
        if isinstance(checked, Response):
            return checked
        if "csrf_token" not in form:
            return _page(request, checked, None)  # authorize-post: the app sent the request as a form
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not csrf_matches(form["csrf_token"], cookie):
            return _error_page(
                request, msg("The consent form has expired or did not come from this site"), 403
            )
        if form.get("action") != "allow":
            return _deny(
                request, checked.redirect_uri, checked.state, "access_denied", msg("The user denied access")
            )
        return await run_in_threadpool(_allow, request, checked, form)

    def _allow(request: Request, req: AuthRequest, form: dict) -> Response:
        store = get_store(request)
        settings = get_settings(request)
        trail = getattr(request.app.state, "audit_trail", None)
        address = request.client.host if request.client else None
        attempt = sign_in(
            store,
            settings,
            trail,
            form.get("username", "")[:64],
            form.get("password", "")[:1024],
            address,
            "/auth/authorize",
        )
        user = attempt.user
        if attempt.wait:
            locked = _page(request, req, "locked", 429)
            locked.headers["Retry-After"] = str(attempt.wait)
            return locked
        if user is None:
            return _page(request, req, "bad_login", 401)
        patient = None
        if needs_patient(req.scopes):
            identifier = form.get("patient_identifier", "").strip()[:64]
            if not identifier:
                return _page(request, req, "need_patient", 400)
            try:
                found = _find_patients(store, fhir_base(request), identifier)
            except FhirError:
                found = []
            # Who looked up which identifier, and whom it found: the consent page reads patient data.
            event = lookup_event(
                f"user/{user.username}", address, identifier, [pid for pid, _l in found], bool(found)
            )
            if trail is not None and not trail.record_event(event):
                return _error_page(
                    request, msg("Audit trail is busy; the request was not served, retry shortly"), 503
                )
            if not found:
                return _page(request, req, "no_patient", 400)
            chosen = form.get("patient_id", "")
            ids = [pid for pid, _label in found]
            if len(found) > 1 and chosen not in ids:
                return _page(request, req, "many_patients", 200, candidates=found, identifier=identifier)
            patient = chosen if len(found) > 1 else ids[0]
        role = ADMIN_SCOPES if user.is_admin else CLINICIAN_SCOPES
        granted = narrow_scopes(req.scopes, role, req.client.scopes.split(), patient is not None)
        if not any("/" in s and s != "launch/patient" for s in granted) and "openid" not in granted:
            return _deny(
                request,
                req.redirect_uri,
                req.state,
                "invalid_scope",
                msg("No requested scope can be granted"),
            )
        code = secrets.token_urlsafe(32)
        now = int(time.time())
        grant = CodeGrant(
            req.client.client_id,
            req.redirect_uri,
            user.username,
            " ".join(granted),
            patient,
            req.nonce,
            req.code_challenge,
            now + settings.authcode_lifetime,
            secret_hash(code),
        )
        authcode_repository(store).add_code(grant.family, grant, now)
        response = _to_redirect(req.redirect_uri, {"code": code, "state": req.state})
        response.delete_cookie(CSRF_COOKIE, path="/auth/authorize")
        return response

    return router


def _deny(request: Request, redirect_uri: str, state: str, error: str, description: Localized) -> Response:
    values = {"error": error, "error_description": description.render(reader_lang(request))}
    if state:
        values["state"] = state
    return _to_redirect(redirect_uri, values)


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

"""Clinician login for the /ui view (issue 13): local accounts, a signed expiring session cookie,
CSRF tokens on forms, security headers, and the admins' "who viewed this record" page.

`UiGate` is a pure ASGI middleware in front of every /ui path: it adds the security headers, and
when authentication is on (LIENTHONG_AUTH) it runs Starlette's SessionMiddleware (itsdangerous-signed
cookie, `Max-Age` = LIENTHONG_SESSION_MAX_AGE) and sends requests without a live session to the login
page. A logged-in user becomes `request.state.principal` (user, `user/*.rs`), so the audit trail and
the API's rules see the same caller. When authentication is off the view stays open, as before.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from fhir_server.api.deps import get_settings, get_store
from fhir_server.errors import FhirError
from fhir_server.i18n import _
from fhir_server.search.run import run_search
from fhir_server.settings import Settings
from fhir_server.ui.accounts import SessionUser
from fhir_server.ui.guarded import sign_in
from fhir_server.ui.pages import csrf_matches, new_csrf_token, render_page

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "lienthong_ui"
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_PAGE_HEADERS = {"Cache-Control": "no-store"}
# Reachable without a session: the login form and the external provider's sign-in (ui/oidc.py).
_OPEN_PATHS = ("/ui/login", "/ui/login/oidc", "/ui/login/oidc/callback")


def login_required(settings: Settings) -> bool:
    """Whether /ui needs a login: exactly when API authentication is on."""
    return settings.auth_mode != "off"


class UiGate:
    """Security headers on /ui; when login is required, a session or a redirect to /ui/login."""

    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.required = login_required(settings)
        self.max_age = settings.session_max_age
        secret = settings.session_secret or secrets.token_urlsafe(32)
        self.with_session = SessionMiddleware(
            self._gate,
            secret_key=secret,
            session_cookie=SESSION_COOKIE,
            max_age=settings.session_max_age,
            path="/ui",
            same_site="strict",
        )

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == "/ui" or path.startswith("/ui/")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _v in message.get("headers", ())}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        if not self.required or scope.get("state", {}).get("principal") is not None:
            # Auth off, or a caller the token gate already verified (a bearer token, not a browser).
            await self.app(scope, receive, with_headers)
            return
        await self.with_session(scope, receive, with_headers)

    async def _gate(self, scope, receive, send) -> None:
        session = scope["session"]
        if scope["path"] not in _OPEN_PATHS:
            user = session.get("user")
            # The cookie's signature carries its own age (sliding); login_at bounds the whole session.
            if not user or time.time() - float(session.get("login_at", 0)) > self.max_age:
                session.clear()
                target = scope["path"] + (
                    "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""
                )
                response = RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
                await response(scope, receive, send)
                return
            account = SessionUser(
                user, session.get("name", ""), tuple(session.get("roles", ())), session.get("province")
            )
            state = scope.setdefault("state", {})
            state["ui_user"] = account
            state["principal"] = account.principal()
        await self.app(scope, receive, send)


def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    """A /ui sign-in page rendered in the reader's language (Vietnamese first)."""
    return _page(request, name, status, **context)


def _page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    return render_page(request, name, _texts, _PAGE_HEADERS, status, **context)


def _texts() -> dict[str, str]:
    """The page texts in the current language (gettext catalog of fhir_server)."""
    return {
        "title": _("Sign in to Lienthong"),
        "username": _("Username"),
        "password": _("Password"),
        "sign_in": _("Sign in"),
        "sign_out": _("Sign out"),
        "sign_out_question": _("Sign out of the clinician view?"),
        "bad_login": _("Wrong username or password, or the account is disabled."),
        "locked": _("Too many failed sign-ins for this account or from this address. Try again later."),
        "csrf": _("The form has expired or did not come from this site. Reload the page and try again."),
        "admins_only": _("Only administrators can see who viewed a record."),
        "who_viewed": _("Who viewed this record"),
        "when": _("When"),
        "who": _("Who"),
        "what": _("Access"),
        "outcome": _("Outcome"),
        "address": _("Address"),
        "none": _("No access recorded."),
        "ok": _("success"),
        "failed": _("refused or failed"),
        "back": _("Back to the record"),
        "sign_in_oidc": _("Sign in with the organisation's account"),
        "signed_in": _("You are signed in."),
        "continue": _("Continue"),
        "oidc_failed": _(
            "Sign-in through the organisation's account failed or the account is not allowed here."
        ),
    }


def _csrf(request: Request) -> str:
    """This session's CSRF token (created on first use)."""
    session = request.session
    if "csrf" not in session:
        session["csrf"] = new_csrf_token()
    return session["csrf"]


def _csrf_ok(request: Request, form) -> bool:
    return csrf_matches(str(form.get("csrf_token") or ""), request.session.get("csrf", ""))


def start_session(request: Request, user, **extra) -> None:
    """Sign `user` in: a fresh session (nothing from before the login survives) with a new CSRF token."""
    session = request.session
    session.clear()
    session.update(
        user=user.username,
        name=user.display_name,
        roles=list(user.roles),
        province=user.province,
        login_at=time.time(),
        csrf=new_csrf_token(),
        **extra,
    )


def _safe_next(value: str | None) -> str:
    """Only paths of the view itself (no open redirect)."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui"


@router.get("/ui/login")
async def login_page(request: Request, next: str = "/ui") -> Response:
    """The Vietnamese login form (with its CSRF token)."""
    if not login_required(get_settings(request)):
        return RedirectResponse("/ui", status_code=303)
    settings = get_settings(request)
    return _page(
        request,
        "login.html",
        csrf_token=_csrf(request),
        next=_safe_next(next),
        error="oidc_failed" if request.query_params.get("error") == "oidc" else None,
        oidc=bool(settings.oidc_issuer and settings.oidc_client_id),
    )


@router.post("/ui/login")
async def login_submit(request: Request) -> Response:
    """Check the CSRF token and the password; start a fresh session on success."""
    if not login_required(get_settings(request)):
        return RedirectResponse("/ui", status_code=303)
    form = await request.form()
    if not _csrf_ok(request, form):
        return _page(request, "message.html", 403, message_key="csrf")
    attempt = await run_in_threadpool(
        sign_in,
        get_store(request),
        get_settings(request),
        getattr(request.app.state, "audit_trail", None),
        str(form.get("username") or "")[:64],
        str(form.get("password") or "")[:1024],
        request.client.host if request.client else None,
        "/ui/login",
    )
    next_path = _safe_next(str(form.get("next") or ""))
    user = attempt.user
    if attempt.wait:
        locked = _page(request, "login.html", 429, csrf_token=_csrf(request), next=next_path, error="locked")
        locked.headers["Retry-After"] = str(attempt.wait)
        return locked
    if user is None:
        return _page(request, "login.html", 401, csrf_token=_csrf(request), next=next_path, error="bad_login")
    start_session(request, user)
    return RedirectResponse(next_path, status_code=303)


@router.get("/ui/logout")
async def logout_page(request: Request) -> Response:
    """A confirmation form, so a plain link can sign out without a state-changing GET."""
    if not login_required(get_settings(request)):
        return RedirectResponse("/ui", status_code=303)
    return _page(request, "logout.html", csrf_token=_csrf(request))


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    """End the session (CSRF-checked)."""
    form = await request.form()
    if not _csrf_ok(request, form):
        return _page(request, "message.html", 403, message_key="csrf")
    request.session.clear()
    return RedirectResponse("/ui/login", status_code=303)


def _audit_rows(store, base: str, patient_id: str) -> list[dict]:
    """The latest AuditEvents naming a patient, newest first, as table rows."""
    params = [("patient", f"Patient/{patient_id}"), ("_sort", "-date"), ("_count", "200")]
    bundle = orjson.loads(run_search(store, "AuditEvent", params, base, max_count=200))
    rows = []
    for entry in bundle.get("entry", []):
        event = entry.get("resource") or {}
        agent = (event.get("agent") or [{}])[0]
        who = agent.get("who") or {}
        rows.append(
            {
                "when": event.get("recorded", ""),
                "who": (who.get("identifier") or {}).get("value") or who.get("display") or "",
                "what": ", ".join(c.get("code", "") for c in event.get("subtype") or []),
                "ok": event.get("outcome") == "0",
                "address": (agent.get("network") or {}).get("address", ""),
            }
        )
    return rows


@router.get("/ui/patient/{patient_id}/audit")
async def who_viewed(request: Request, patient_id: str) -> Response:
    """Who accessed this patient's record (administrators only)."""
    user = getattr(request.state, "ui_user", None)
    if user is None or not user.is_admin:
        return _page(request, "message.html", 403, message_key="admins_only")
    try:
        rows = await run_in_threadpool(
            _audit_rows, get_store(request), str(request.base_url) + "fhir", patient_id
        )
    except FhirError:
        rows = []
    return _page(request, "who_viewed.html", rows=rows, patient_id=patient_id)

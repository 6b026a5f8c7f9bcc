"""Sign in to the /ui view through an external OpenID Connect provider (issue 13), when configured.

Code flow with PKCE (S256) and a nonce: `/ui/login/oidc` sends the browser to the provider found by
discovery (`<issuer>/.well-known/openid-configuration`); `/ui/login/oidc/callback` checks `state`,
exchanges the code (with the client secret as HTTP Basic when one is configured), verifies the id_token
with python-jose against the provider's JWKS (signature, `iss`, `aud` = our client id, `exp`, `nonce`)
and maps the claim `oidc_user_claim` to a local account: the account must exist and be enabled, and it
gives the role. The provider proves who the person is; this server still decides what she may do.

The flow's secrets (state, nonce, verifier) travel in a signed, 10-minute cookie scoped to
/ui/login/oidc with SameSite=Lax: the provider's redirect back is a cross-site navigation, which a
Strict cookie (like the session's) would not survive.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jose import JWTError, jwt
from starlette.concurrency import run_in_threadpool

from fhir_server.api.deps import get_settings, get_store
from fhir_server.settings import Settings
from fhir_server.storage.sql.users import user_repository
from fhir_server.ui.accounts import SessionUser
from fhir_server.ui.login import page, start_session

router = APIRouter(include_in_schema=False)

FLOW_COOKIE = "lienthong_oidc"
FLOW_PATH = "/ui/login/oidc"
FLOW_MAX_AGE = 600
_DISCOVERY_TTL = 3600
_TIMEOUT = 10.0
_cache: dict[str, tuple[float, dict]] = {}
# One per process unless LIENTHONG_SESSION_SECRET is set, like the session cookie.
_FALLBACK_SECRET = secrets.token_urlsafe(32)


class OidcError(Exception):
    """The sign-in through the provider failed (the reason is logged nowhere: it may carry claims)."""


def configured(settings: Settings) -> bool:
    """Whether an external provider is set up."""
    return bool(settings.oidc_issuer and settings.oidc_client_id)


def _get_json(url: str) -> dict:
    response = httpx.get(url, timeout=_TIMEOUT, follow_redirects=False)
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise OidcError("not a JSON object")
    return body


def provider(issuer: str) -> dict:
    """The provider's discovery document and JWKS (cached an hour); OidcError when they do not hold."""
    hit = _cache.get(issuer)
    if hit and hit[0] > time.time():
        return hit[1]
    try:
        doc = _get_json(f"{issuer}/.well-known/openid-configuration")
        if doc.get("issuer") != issuer:
            raise OidcError("issuer mismatch in discovery")
        doc = {**doc, "jwks": _get_json(str(doc["jwks_uri"]))}
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise OidcError("provider unreachable or invalid") from exc
    _cache[issuer] = (time.time() + _DISCOVERY_TTL, doc)
    return doc


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.session_secret or _FALLBACK_SECRET, salt="lienthong-oidc")


def _redirect_uri(request: Request) -> str:
    settings = get_settings(request)
    root = (settings.public_base_url or str(request.base_url)).rstrip("/")
    if root.endswith(settings.base_path):
        root = root[: -len(settings.base_path)]
    return f"{root}{FLOW_PATH}/callback"


@router.get(FLOW_PATH)
async def start(request: Request, next: str = "/ui") -> Response:
    """Send the browser to the provider's authorization endpoint."""
    settings = get_settings(request)
    if not configured(settings):
        return RedirectResponse("/ui/login", status_code=303)
    try:
        doc = await run_in_threadpool(provider, str(settings.oidc_issuer))
    except OidcError:
        return RedirectResponse("/ui/login?error=oidc", status_code=303)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": _redirect_uri(request),
            "scope": settings.oidc_scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    response = RedirectResponse(f"{doc['authorization_endpoint']}?{query}", status_code=303)
    flow = _serializer(settings).dumps({"state": state, "nonce": nonce, "verifier": verifier, "next": next})
    response.set_cookie(
        FLOW_COOKIE,
        flow,
        max_age=FLOW_MAX_AGE,
        path=FLOW_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def _exchange(settings: Settings, doc: dict, code: str, verifier: str, redirect_uri: str) -> dict:
    """The provider's token answer for a code, with its id_token verified."""
    auth = (
        (str(settings.oidc_client_id), settings.oidc_client_secret) if settings.oidc_client_secret else None
    )
    try:
        response = httpx.post(
            str(doc["token_endpoint"]),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": settings.oidc_client_id,
                "code_verifier": verifier,
            },
            auth=auth,
            timeout=_TIMEOUT,
        )
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcError("code exchange failed") from exc
    id_token = body.get("id_token") if isinstance(body, dict) else None
    if not id_token:
        raise OidcError("no id_token")
    algs = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
    try:
        return jwt.decode(
            id_token,
            doc["jwks"],
            algorithms=[a for a in algs if a != "none"],
            audience=settings.oidc_client_id,
            issuer=settings.oidc_issuer,
            access_token=body.get("access_token"),
            options={"require_exp": True, "require_iat": True},
        )
    except JWTError as exc:
        raise OidcError("id_token rejected") from exc


@router.get(f"{FLOW_PATH}/callback")
async def callback(request: Request) -> Response:
    """Finish the sign-in: state, code exchange, id_token, local account; then a fresh session."""
    settings = get_settings(request)
    failed = RedirectResponse("/ui/login?error=oidc", status_code=303)
    failed.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    if not configured(settings):
        return failed
    try:
        flow = _serializer(settings).loads(request.cookies.get(FLOW_COOKIE, ""), max_age=FLOW_MAX_AGE)
    except BadSignature:
        return failed
    params = request.query_params
    sent = params.get("state", "")
    if not sent or not secrets.compare_digest(sent, flow["state"]) or not params.get("code"):
        return failed
    try:
        doc = await run_in_threadpool(provider, str(settings.oidc_issuer))
        claims = await run_in_threadpool(
            _exchange, settings, doc, params["code"], flow["verifier"], _redirect_uri(request)
        )
    except OidcError:
        return failed
    if not secrets.compare_digest(str(claims.get("nonce", "")), flow["nonce"]):
        return failed
    username = str(claims.get(settings.oidc_user_claim) or "")[:64]
    row = await run_in_threadpool(user_repository(get_store(request)).get, username) if username else None
    if row is None or row.disabled:
        return failed
    user = SessionUser(row.username, row.display_name, row.roles, row.province)
    start_session(request, user, via="oidc")
    next_path = str(flow.get("next") or "/ui")
    safe = next_path.startswith("/ui") and not next_path.startswith("//") and "\\" not in next_path
    # A page, not a 303: this request came from the provider's site, and browsers keep a redirect
    # chain cross-site, so the SameSite=Strict session cookie would be missing on the next hop.
    response = page(request, "signed_in.html", next=next_path if safe else "/ui")
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response

"""SMART Backend Services: discovery, the token endpoint (client_credentials + private_key_jwt), JWKS.

A registered client signs an assertion (iss = sub = its client id, aud = this token endpoint, exp at
most 5 minutes ahead, a fresh jti) with its private key; the server checks it against the client's
stored public key and answers a short-lived access token signed with the server's own key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from jose import JWTError, jwt
from starlette.concurrency import run_in_threadpool

from fhir_server.api.deps import get_settings
from fhir_server.api.responses import request_lang
from fhir_server.audit.signin import revoke_event
from fhir_server.auth.clients import ASSERTION_ALGORITHMS, parse_public_key, public_jwk, public_pem
from fhir_server.auth.grants import Issuer, code_grant, refresh_grant, secret_hash
from fhir_server.auth.grants import OAuthError as _OAuthError
from fhir_server.auth.tokens import AuthConfig, issue_token
from fhir_server.i18n import msg
from fhir_server.settings import Settings
from fhir_server.storage.sql.auth import ClientRecord
from fhir_server.storage.sql.authcode import authcode_repository
from fhir_server.storage.sql.users import user_repository

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300  # seconds: SMART Backend Services caps exp at five minutes
SCOPES_SUPPORTED = (
    "system/*.rs",
    "system/*.cruds",
    "system/*.read",
    "system/*.write",
    "system/*.*",
    # SMART App Launch (clinicians and their apps): read-only user/ and patient/ scopes
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "online_access",
    "user/*.rs",
    "user/*.read",
    "patient/*.rs",
    "patient/*.read",
)


@dataclass(frozen=True)
class SigningKey:
    """The server's token signing key."""

    kid: str
    alg: str
    private_pem: str

    def verifier(self, audience: str | None) -> AuthConfig:
        """The AuthConfig that verifies tokens this key signed."""
        return AuthConfig(public_pem(self.private_pem), (self.alg,), audience)


def server_root(request: Request) -> str:
    """The server's public root URL (LIENTHONG_PUBLIC_BASE_URL minus the FHIR base path wins)."""
    settings = get_settings(request)
    if settings.public_base_url:
        base = settings.public_base_url.rstrip("/")
        return base[: -len(settings.base_path)] if base.endswith(settings.base_path) else base
    return str(request.base_url).rstrip("/")


def token_audience(settings: Settings) -> str | None:
    """The `aud` of the access tokens we issue (and require)."""
    return settings.jwt_audience or settings.public_base_url


def fhir_base(request: Request) -> str:
    """This server's FHIR base URL (the `aud` a SMART app must send to /auth/authorize)."""
    settings = get_settings(request)
    return f"{server_root(request)}{settings.base_path.rstrip('/')}"


def smart_configuration(root: str) -> dict:
    """The SMART discovery document (/.well-known/smart-configuration)."""
    return {
        "issuer": root,
        "jwks_uri": f"{root}/auth/jwks",
        "authorization_endpoint": f"{root}/auth/authorize",
        "token_endpoint": f"{root}/auth/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "revocation_endpoint": f"{root}/auth/revoke",
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-asymmetric",
            "context-standalone-patient",
            "permission-offline",
            "permission-online",
            "permission-patient",
            "permission-user",
            "permission-v1",
            "permission-v2",
            "sso-openid-connect",
            "authorize-post",
        ],
    }


def build_router(key: SigningKey, store, base_path: str) -> APIRouter:
    """The token endpoint, JWKS and discovery routes, bound to the signing key and the client store."""
    router = APIRouter()
    repo = store.auth

    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse(smart_configuration(server_root(request)))

    router.add_api_route(
        "/.well-known/smart-configuration", discovery, methods=["GET"], include_in_schema=False
    )
    router.add_api_route(
        f"{base_path}/.well-known/smart-configuration", discovery, methods=["GET"], include_in_schema=False
    )

    @router.get("/.well-known/openid-configuration", include_in_schema=False)
    async def openid_configuration(request: Request) -> JSONResponse:
        """OpenID Connect discovery, so this server can be the sign-in provider of another one."""
        root = server_root(request)
        return JSONResponse(
            {
                "issuer": root,
                "authorization_endpoint": f"{root}/auth/authorize",
                "token_endpoint": f"{root}/auth/token",
                "jwks_uri": f"{root}/auth/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [key.alg],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
                "revocation_endpoint": f"{root}/auth/revoke",
                "revocation_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
                "scopes_supported": ["openid", "profile", "fhirUser", "offline_access"],
                "claims_supported": ["sub", "preferred_username", "name", "fhirUser", "nonce"],
            }
        )

    @router.get("/auth/jwks", include_in_schema=False)
    async def jwks() -> JSONResponse:
        return JSONResponse({"keys": [public_jwk(key.private_pem, key.kid, key.alg)]})

    @router.post("/auth/token", include_in_schema=False)
    async def token(request: Request) -> JSONResponse:
        """OAuth 2.0 token endpoint: client_credentials (private_key_jwt), authorization_code, refresh_token."""
        try:
            form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
            body = await run_in_threadpool(_grant, form, f"{server_root(request)}/auth/token", request)
        except _OAuthError as exc:
            return _error_response(request, exc)
        return JSONResponse(body, headers=_NO_STORE)

    @router.post("/auth/revoke", include_in_schema=False)
    async def revoke(request: Request) -> JSONResponse:
        """RFC 7009 token revocation: a refresh token and its whole family; 200 for an unknown token too."""
        try:
            form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
            # the assertion's audience is the token endpoint, as for the token request (RFC 7523 §3)
            await run_in_threadpool(_revoke, form, f"{server_root(request)}/auth/token", request)
        except _OAuthError as exc:
            return _error_response(request, exc)
        return JSONResponse({}, headers=_NO_STORE)

    def _revoke(form: dict, token_url: str, request: Request) -> None:
        client_id = _app_client(form, token_url)
        token = form.get("token", "")
        if not token or len(token) > 4096:
            raise _OAuthError(400, "invalid_request", msg("The token parameter is required"))
        outcome, username = authcode_repository(store).revoke_refresh(secret_hash(token), client_id)
        trail = getattr(request.app.state, "audit_trail", None)
        address = request.client.host if request.client else None
        if trail is not None and not trail.record_event(revoke_event(client_id, username, address, outcome)):
            raise _OAuthError(
                503,
                "temporarily_unavailable",
                msg("Audit trail is busy; the request was not served, retry shortly"),
            )
        if outcome == "other_client":
            raise _OAuthError(400, "unauthorized_client", msg("The token was issued to another client"))
        if outcome == "unknown" and form.get("token_type_hint") == "access_token" and token.count(".") == 2:
            # access tokens are self-contained JWTs that expire within minutes: nothing to revoke
            raise _OAuthError(
                400,
                "unsupported_token_type",
                msg("Access tokens cannot be revoked; they expire on their own"),
            )

    def _grant(form: dict, token_url: str, request: Request) -> dict:
        grant_type = form.get("grant_type")
        if grant_type in ("authorization_code", "refresh_token"):
            return _app_grant(form, token_url, request)
        if grant_type != "client_credentials":
            raise _OAuthError(
                400,
                "unsupported_grant_type",
                msg("grant_type must be client_credentials, authorization_code or refresh_token"),
            )
        settings = get_settings(request)
        client = _assertion_client(form, token_url)
        client_id = client.client_id
        registered = client.scopes.split()
        asked = form.get("scope", "").split() or registered
        granted = [s for s in asked if s in registered]
        if not granted:
            raise _OAuthError(
                400, "invalid_scope", msg("None of the requested scopes is registered for this client")
            )
        extra = {"client_id": client_id, "scope": " ".join(granted), "kind": "system"}
        if client.facility:
            extra["facility"] = client.facility
        if client.province:
            extra["province"] = client.province
        lifetime = settings.token_lifetime
        audience = token_audience(settings) or ""
        access = issue_token(
            key.private_pem,
            key.alg,
            key.kid,
            server_root(request),
            audience,
            {"sub": client_id, **extra},
            lifetime,
        )
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": lifetime,
            "scope": " ".join(granted),
        }

    def _assertion_client(form: dict, token_url: str) -> ClientRecord:
        """The registered client a private_key_jwt assertion authenticates (its jti is spent)."""
        assertion = form.get("client_assertion", "")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
            raise _OAuthError(400, "invalid_request", msg("A private_key_jwt client assertion is required"))
        try:
            unverified = jwt.get_unverified_claims(assertion)
            alg = jwt.get_unverified_header(assertion).get("alg")
        except JWTError:
            raise _OAuthError(400, "invalid_request", msg("The client assertion is not a JWT"))
        client_id = str(unverified.get("iss") or "")
        if not client_id or unverified.get("sub") != client_id:
            raise _OAuthError(
                401, "invalid_client", msg("The assertion's iss and sub must both be the client id")
            )
        if alg not in ASSERTION_ALGORITHMS:
            raise _OAuthError(
                401, "invalid_client", msg("Assertion algorithm {alg} is not accepted", alg=str(alg))
            )
        client = repo.client(client_id)
        if client is None or not client.enabled:
            raise _OAuthError(401, "invalid_client", msg("Unknown or disabled client"))
        try:
            claims = jwt.decode(
                assertion,
                parse_public_key(client.public_key),
                algorithms=[alg],
                audience=token_url,
                issuer=client_id,
                subject=client_id,
                options={"require_exp": True, "require_aud": True, "require_jti": True},
            )
        except (JWTError, ValueError) as exc:
            raise _OAuthError(
                401, "invalid_client", msg("Invalid client assertion: {reason}", reason=str(exc))
            )
        now = int(time.time())
        exp = int(claims["exp"])
        if exp - now > MAX_ASSERTION_LIFETIME:
            raise _OAuthError(401, "invalid_client", msg("The assertion's exp is more than 5 minutes ahead"))
        if not repo.use_jti(client_id, str(claims["jti"]), exp, now):
            raise _OAuthError(401, "invalid_client", msg("The assertion's jti was already used"))
        return client

    def _app_client(form: dict, token_url: str) -> str:
        """The app client of a token or revocation request: a public app names itself, a confidential one signs."""
        codes = authcode_repository(store)
        if form.get("client_assertion"):
            client_id = _assertion_client(form, token_url).client_id
            app = codes.app(client_id)
            if app is None:
                raise _OAuthError(401, "invalid_client", msg("Unknown or disabled client"))
        else:
            client_id = form.get("client_id", "")
            record = repo.client(client_id) if client_id else None
            app = codes.app(client_id) if record is not None and record.enabled else None
            if app is None or not app.public:
                raise _OAuthError(401, "invalid_client", msg("Unknown or disabled client"))
        return client_id

    def _app_grant(form: dict, token_url: str, request: Request) -> dict:
        """authorization_code / refresh_token for an authenticated app client."""
        settings = get_settings(request)
        codes = authcode_repository(store)
        client_id = _app_client(form, token_url)
        users = user_repository(store)

        def account(username: str):
            row = users.get(username)
            return (row.display_name, not row.disabled, row.province) if row else None

        issuer = Issuer(
            key,
            server_root(request),
            token_audience(settings) or fhir_base(request),
            fhir_base(request),
            settings.token_lifetime,
            settings.refresh_token_lifetime,
            settings.session_max_age,
        )
        if form.get("grant_type") == "authorization_code":
            return code_grant(form, client_id, codes, issuer, account)
        return refresh_grant(form, client_id, codes, issuer, account)

    return router


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error_response(request: Request, exc: _OAuthError) -> JSONResponse:
    """An RFC 6749 §5.2 error body, its description in the caller's language."""
    text = (
        exc.description if isinstance(exc.description, str) else exc.description.render(request_lang(request))
    )
    return JSONResponse({"error": exc.error, "error_description": text}, exc.status, headers=_NO_STORE)

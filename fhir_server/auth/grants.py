"""SMART App Launch grants at the token endpoint: `authorization_code` (with PKCE S256) and rotating
`refresh_token`, plus the scope rules both the consent page and the token endpoint apply.

A code is spent once: a second use is refused and revokes every refresh token issued from it (OAuth 2.0
Security BCP §4.5 / RFC 6749 §10.5). A refresh token is rotated on every use; presenting a used one
again is taken as theft and revokes the whole family (BCP §4.14). Access tokens are short-lived JWTs
signed with the server key, as for Backend Services; an id_token is issued for `openid`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fhir_server.auth.scopes import EXPLICIT_ONLY, Grant, parse_scope
from fhir_server.auth.tokens import issue_token
from fhir_server.i18n import Localized, msg
from fhir_server.storage.sql.authcode import AuthCodeRepository, CodeGrant, Consumed

if TYPE_CHECKING:
    from fhir_server.auth.smart import SigningKey

# Scopes that are not resource access: OpenID Connect, launch context and refresh tokens.
CONTEXT_SCOPES = ("openid", "fhirUser", "profile", "launch/patient", "offline_access", "online_access")
REFRESH_SCOPES = ("offline_access", "online_access")
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class OAuthError(Exception):
    """An RFC 6749 error answer: HTTP status, `error` code and a localized description."""

    def __init__(self, status: int, error: str, description: Localized | str):
        super().__init__(error)
        self.status, self.error, self.description = status, error, description


def secret_hash(value: str) -> str:
    """How codes and refresh tokens are stored: SHA-256 hex (they are long random values, no salt needed)."""
    return hashlib.sha256(value.encode()).hexdigest()


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def pkce_ok(verifier: str, challenge: str) -> bool:
    """Whether the verifier is well formed and hashes to the stored challenge."""
    return bool(_VERIFIER.match(verifier)) and secrets.compare_digest(s256(verifier), challenge)


def _covers(have: Grant, want: Grant) -> bool:
    same_type = have.resource_type == want.resource_type or (
        have.resource_type == "*" and want.resource_type not in EXPLICIT_ONLY
    )
    return same_type and want.actions <= have.actions


def narrow_scopes(
    asked: list[str], role_scopes: frozenset[str], registered: list[str], patient: bool
) -> list[str]:
    """Scopes granted: the asked ones the user's role allows (user/ grants, or patient/ ones when a patient
    was chosen) and the client is registered for (a registered scope covers narrower ones)."""
    role = [g for g in (parse_scope(s) for s in role_scopes) if g is not None]
    reg = [g for g in (parse_scope(s) for s in registered) if g is not None]
    out: list[str] = []
    for scope in dict.fromkeys(asked):
        if scope in CONTEXT_SCOPES:
            if scope in registered and (scope != "launch/patient" or patient):
                out.append(scope)
            continue
        want = parse_scope(scope)
        if want is None or want.context == "system" or (want.context == "patient" and not patient):
            continue
        as_user = Grant("user", want.resource_type, want.actions)
        if any(_covers(r, as_user) for r in role) and any(
            r.context == want.context and _covers(r, want) for r in reg
        ):
            out.append(scope)
    return out


def needs_patient(scopes: list[str]) -> bool:
    """Whether the request asks for a patient context (launch/patient or a patient/ scope)."""
    return any(s == "launch/patient" or s.startswith("patient/") for s in scopes)


@dataclass(frozen=True)
class Issuer:
    """Everything needed to sign tokens for one request: key, issuer, audience, lifetimes, FHIR base."""

    key: SigningKey
    root: str
    audience: str
    fhir_base: str
    access_lifetime: int
    refresh_lifetime: int
    online_lifetime: int


def _grant_answer(
    issuer: Issuer,
    repo: AuthCodeRepository,
    grant: CodeGrant,
    user: tuple,
    with_id_token: bool,
) -> dict:
    """Access token (+ id_token, + a fresh refresh token living until `grant.expires`) for a grant;
    `user` is (display name, enabled[, province]) of the account as it is now."""
    display_name = user[0]
    # The account's province as stored now (not at consent): narrowing an account takes effect on refresh.
    province = user[2] if len(user) > 2 else None
    scopes = grant.scope.split()
    claims: dict = {
        "sub": f"user/{grant.username}",
        "scope": grant.scope,
        "kind": "user",
        "client_id": grant.client_id,
    }
    if grant.patient:
        claims["patient"] = grant.patient
    if province:
        claims["province"] = province
    key = issuer.key
    out: dict = {
        "access_token": issue_token(
            key.private_pem, key.alg, key.kid, issuer.root, issuer.audience, claims, issuer.access_lifetime
        ),
        "token_type": "Bearer",
        "expires_in": issuer.access_lifetime,
        "scope": grant.scope,
    }
    if grant.patient:
        out["patient"] = grant.patient
        out["need_patient_banner"] = True
    if with_id_token and "openid" in scopes:
        id_claims: dict = {"sub": grant.username, "preferred_username": grant.username, "name": display_name}
        if grant.nonce:
            id_claims["nonce"] = grant.nonce
        fhir_user = repo.fhir_user(grant.username)
        if fhir_user and ("fhirUser" in scopes or "profile" in scopes):
            id_claims["fhirUser"] = f"{issuer.fhir_base}/{fhir_user}"
        out["id_token"] = issue_token(
            key.private_pem, key.alg, key.kid, issuer.root, grant.client_id, id_claims, issuer.access_lifetime
        )
    if any(s in scopes for s in REFRESH_SCOPES):
        refresh = secrets.token_urlsafe(32)
        repo.add_refresh(secret_hash(refresh), grant)
        out["refresh_token"] = refresh
    return out


def _spend(
    repo: AuthCodeRepository,
    spend: Callable[[str], tuple[str, CodeGrant | None]],
    secret: str,
    client_id: str,
    *,
    unknown: Localized,
    replayed: Localized,
    expired: Localized,
    other_client: Localized,
) -> CodeGrant:
    """Spend a one-time code or refresh token: a replay revokes its family; expiry and client checked."""
    state, grant = spend(secret_hash(secret))
    if grant is None:
        raise OAuthError(400, "invalid_grant", unknown)
    if state == Consumed.REPLAYED:
        repo.revoke_family(grant.family)
        raise OAuthError(400, "invalid_grant", replayed)
    if grant.expires < int(time.time()):
        raise OAuthError(400, "invalid_grant", expired)
    if grant.client_id != client_id:
        raise OAuthError(400, "invalid_grant", other_client)
    return grant


def _enabled_account(account, username: str):
    """The local user's (display name, enabled[, province]); a missing or disabled one is invalid_grant."""
    user = account(username)
    if user is None or not user[1]:
        raise OAuthError(400, "invalid_grant", msg("The user account is disabled"))
    return user


def code_grant(form: dict, client_id: str, repo: AuthCodeRepository, issuer: Issuer, account) -> dict:
    """grant_type=authorization_code: spend the code, check client, redirect_uri and PKCE; answer tokens.

    `account(username)` gives (display name, enabled[, province]) of the local user, or None."""
    code = form.get("code", "")
    if not code or len(code) > 256:
        raise OAuthError(400, "invalid_request", msg("The code parameter is required"))
    grant = _spend(
        repo,
        repo.spend_code,
        code,
        client_id,
        unknown=msg("Unknown authorization code"),
        replayed=msg("The authorization code was already used; tokens issued from it are revoked"),
        expired=msg("The authorization code has expired"),
        other_client=msg("The authorization code was issued to another client"),
    )
    if form.get("redirect_uri", "") != grant.redirect_uri:
        raise OAuthError(400, "invalid_grant", msg("redirect_uri does not match the authorization request"))
    if not pkce_ok(form.get("code_verifier", ""), grant.code_challenge):
        raise OAuthError(
            400, "invalid_grant", msg("The PKCE code_verifier does not match the code_challenge")
        )
    user = _enabled_account(account, grant.username)
    scopes = grant.scope.split()
    lifetime = issuer.refresh_lifetime if "offline_access" in scopes else issuer.online_lifetime
    fresh = CodeGrant(
        grant.client_id,
        grant.redirect_uri,
        grant.username,
        grant.scope,
        grant.patient,
        grant.nonce,
        "",
        int(time.time()) + lifetime,  # the end of the refresh family: rotation never extends it
        grant.family,
    )
    return _grant_answer(issuer, repo, fresh, user, with_id_token=True)


def refresh_grant(form: dict, client_id: str, repo: AuthCodeRepository, issuer: Issuer, account) -> dict:
    """grant_type=refresh_token: rotate the token (a reused one revokes its family); scope may narrow."""
    token = form.get("refresh_token", "")
    if not token or len(token) > 256:
        raise OAuthError(400, "invalid_request", msg("The refresh_token parameter is required"))
    grant = _spend(
        repo,
        repo.spend_refresh,
        token,
        client_id,
        unknown=msg("Unknown refresh token"),
        replayed=msg("The refresh token was already used or revoked; its family is revoked"),
        expired=msg("The refresh token has expired"),
        other_client=msg("The refresh token was issued to another client"),
    )
    user = _enabled_account(account, grant.username)
    scope = grant.scope
    if form.get("scope"):
        asked = form["scope"].split()
        if not set(asked) <= set(grant.scope.split()):
            raise OAuthError(400, "invalid_scope", msg("A refresh may only narrow the granted scopes"))
        scope = " ".join(asked)
    rotated = CodeGrant(
        grant.client_id, "", grant.username, scope, grant.patient, None, "", grant.expires, grant.family
    )
    return _grant_answer(issuer, repo, rotated, user, with_id_token=False)

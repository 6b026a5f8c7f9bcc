"""Access tokens: verification of bearer JWTs (python-jose) into a `Principal`, and issuing our own.

Verification refuses `alg=none` and any algorithm the key is not configured for, requires `exp`, and
requires `aud` whenever an audience is configured (python-jose alone accepts a token *without* `aud`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from jose import JWTError, jwt

from fhir_server.auth.scopes import ScopePolicy
from fhir_server.errors import FhirError
from fhir_server.i18n import Localized, msg


@dataclass(frozen=True)
class AuthConfig:
    """How tokens are verified: one key (secret, PEM or JWK dict) and the algorithms allowed with it."""

    key: str | dict
    algorithms: tuple[str, ...]
    audience: str | None = None
    issuer: str | None = None


@dataclass(frozen=True)
class Principal:
    """The verified caller (`request.state.principal`): who, which scopes, and what it is bound to.

    kind: system (backend client), user (clinician) or patient (a `patient` claim); facility: the
    5-digit facility code a hospital client writes for; province: the province code of a
    health-department client."""

    subject: str
    scopes: frozenset[str]
    facility: str | None = None
    kind: str = "system"
    patient: str | None = None
    province: str | None = None
    client_id: str | None = None
    expires: int | None = None  # the token's exp (seconds since the epoch)
    policy: ScopePolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", ScopePolicy.parse(self.scopes, self.patient))


def unauthorized(text: str | Localized) -> FhirError:
    """A 401 OperationOutcome with the Bearer challenge."""
    err = FhirError.make(401, "login", text)
    err.headers["WWW-Authenticate"] = 'Bearer realm="lienthong"'
    return err


def _claims(token: str, config: AuthConfig) -> dict:
    return jwt.decode(
        token,
        config.key,
        algorithms=list(config.algorithms),
        audience=config.audience,
        issuer=config.issuer,
        options={
            "require_exp": True,
            "require_aud": bool(config.audience),
            "verify_aud": bool(config.audience),
        },
    )


def verify_token(token: str, configs: AuthConfig | Sequence[AuthConfig]) -> Principal:
    """Verify signature, algorithm, expiry, audience and issuer against the configured keys; 401 on failure."""
    try:
        header = jwt.get_unverified_header(token)
    except JWTError:
        raise unauthorized(msg("Invalid access token: malformed"))
    alg = str(header.get("alg", ""))
    if not alg or alg.lower() == "none":
        raise unauthorized(msg("Invalid access token: unsigned tokens (alg=none) are refused"))
    candidates = [
        c for c in ([configs] if isinstance(configs, AuthConfig) else configs) if alg in c.algorithms
    ]
    if not candidates:
        raise unauthorized(msg("Invalid access token: algorithm {alg} is not accepted", alg=alg))
    error: JWTError | None = None
    for config in candidates:
        try:
            return principal_of(_claims(token, config))
        except JWTError as exc:
            error = exc
    raise unauthorized(msg("Invalid access token: {reason}", reason=str(error)))


def principal_of(claims: dict) -> Principal:
    """The Principal a verified claim set describes."""
    scopes = claims.get("scope", "")
    scope_set = frozenset(scopes.split() if isinstance(scopes, str) else scopes or ())
    patient = claims.get("patient")
    kind = claims.get("kind") or ("patient" if patient else "system")
    return Principal(
        subject=str(claims.get("sub", "")),
        scopes=scope_set,
        facility=_opt(claims.get("facility")),
        kind=str(kind),
        patient=_opt(patient),
        province=_opt(claims.get("province")),
        client_id=_opt(claims.get("client_id")),
        expires=int(claims["exp"]) if isinstance(claims.get("exp"), (int, float)) else None,
    )


def _opt(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def issue_token(
    key: str | dict, algorithm: str, kid: str, issuer: str, audience: str, claims: dict, lifetime: int
) -> str:
    """Sign a short-lived access token (our own key) carrying the given claims."""
    now = int(time.time())
    body = {
        **claims,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})

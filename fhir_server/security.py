"""Bearer-token access control: verified JWTs (python-jose) with SMART scopes.

LIENTHONG_AUTH=jwt turns it on. Tokens are verified against LIENTHONG_JWT_SECRET (HS256) or
LIENTHONG_JWT_PUBLIC_KEY (PEM, RS256/ES256); `exp` is required, `aud` checked when configured.
Scopes follow SMART v1: `system/Patient.read`, `system/*.write`, `user/*.*` …
"""

from __future__ import annotations

from dataclasses import dataclass

from jose import JWTError, jwt

from fhir_server.errors import FhirError

_READ_METHODS = {"GET", "HEAD", "OPTIONS"}
# Paths anyone may read: the CapabilityStatement (SMART discovery) and liveness.
PUBLIC_PATHS = ("/fhir/metadata", "/healthz", "/metrics")


@dataclass(frozen=True)
class AuthConfig:
    """How tokens are verified."""

    key: str
    algorithms: tuple[str, ...]
    audience: str | None = None
    issuer: str | None = None


@dataclass(frozen=True)
class Principal:
    """The verified caller: subject, scopes and (optionally) the facility it speaks for."""

    subject: str
    scopes: frozenset[str]
    facility: str | None = None


def verify_token(token: str, config: AuthConfig) -> Principal:
    """Verify signature, expiry, audience and issuer; 401 OperationOutcome on any failure."""
    try:
        claims = jwt.decode(
            token,
            config.key,
            algorithms=list(config.algorithms),
            audience=config.audience,
            issuer=config.issuer,
            options={"require_exp": True, "verify_aud": bool(config.audience)},
        )
    except JWTError as exc:
        raise _unauthorized(f"Invalid access token: {exc}")
    scopes = claims.get("scope", "")
    scope_set = frozenset(scopes.split() if isinstance(scopes, str) else scopes)
    return Principal(str(claims.get("sub", "")), scope_set, claims.get("facility"))


def _unauthorized(msg: str) -> FhirError:
    err = FhirError.make(401, "login", msg)
    err.headers["WWW-Authenticate"] = 'Bearer realm="lienthong"'
    return err


def allowed(principal: Principal, resource_type: str | None, method: str) -> bool:
    """Whether the scopes grant this access (SMART v1: context/type.read|write|*)."""
    action = "read" if method in _READ_METHODS else "write"
    for scope in principal.scopes:
        context, _, rest = scope.partition("/")
        if context not in ("system", "user", "patient") or not rest:
            continue
        rtype, _, perm = rest.partition(".")
        if rtype in ("*", resource_type or "*") and perm in ("*", action):
            return True
    return False


def resource_type_of(path: str, base_path: str) -> str | None:
    """The resource type a FHIR path addresses (None for system-level paths)."""
    if not path.startswith(base_path):
        return None
    first = path[len(base_path) :].strip("/").split("/", 1)[0]
    return first if first[:1].isupper() else None


def authorize(headers: dict, method: str, path: str, base_path: str, config: AuthConfig) -> Principal | None:
    """Check the request's bearer token and scopes; raise 401/403 FhirErrors."""
    if path in PUBLIC_PATHS or path.startswith(("/docs", "/openapi.json")):
        return None
    header = headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Missing bearer token (Authorization: Bearer <JWT>)")
    principal = verify_token(token.strip(), config)
    if not allowed(principal, resource_type_of(path, base_path), method):
        raise FhirError.make(403, "forbidden", f"Token scopes do not allow {method} on this resource")
    return principal

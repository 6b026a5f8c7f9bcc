"""Credentials the hub presents to a node: one `TokenSource` per node, chosen by the config's `auth.type`.

`none`, `bearer` (a configured static token, or one read from an environment variable) and
`smart-backend`: SMART Backend Services — the hub signs a private_key_jwt client assertion (python-jose)
and trades it at the node's token endpoint for a short-lived access token, cached until shortly before
it expires. The client asks for a token before every request, so refresh needs no other change.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
from jose import jwt

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 240  # seconds; SMART caps an assertion's exp at five minutes
REFRESH_MARGIN = 30  # seconds before expiry a cached token is replaced


class TokenError(Exception):
    """The node's token endpoint did not give an access token (its answer, without secrets, as text)."""


class TokenSource(Protocol):
    """Gives the bearer token to put in the Authorization header (None: send none)."""

    async def token(self) -> str | None:
        """The current token; may fetch or refresh one."""
        ...


@dataclass(frozen=True)
class NoAuth:
    """A node on a trusted network that asks for no token."""

    async def token(self) -> str | None:
        """No token."""
        return None


@dataclass(frozen=True)
class StaticBearer:
    """A token fixed in the config (`token`) or read from an environment variable (`token_env`)."""

    value: str

    async def token(self) -> str | None:
        """The configured token."""
        return self.value


def _bearer(spec: dict) -> TokenSource:
    if spec.get("token"):
        return StaticBearer(str(spec["token"]))
    env = spec.get("token_env")
    if env:
        value = os.environ.get(env)
        if not value:
            raise ValueError(f"auth.token_env {env!r} is not set in the environment")
        return StaticBearer(value)
    raise ValueError("auth type 'bearer' needs 'token' or 'token_env'")


@dataclass
class SmartBackend:
    """SMART Backend Services client: client_credentials grant with a signed JWT assertion, token cached."""

    token_url: str
    client_id: str
    private_key: str  # PEM
    algorithm: str = "RS384"
    scope: str = "system/*.rs"
    kid: str | None = None
    timeout: float = 5.0
    fetched: int = 0  # token requests made (operators and tests read it)
    _cached: tuple[str, float] | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def assertion(self) -> str:
        """A fresh client assertion: iss = sub = client id, aud = token endpoint, short exp, new jti."""
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(claims, self.private_key, algorithm=self.algorithm, headers=headers)

    async def token(self) -> str | None:
        """The cached access token, or a new one when none is cached or it is about to expire."""
        async with self._lock:  # concurrent fan-out requests share one fetch
            if self._cached is not None and self._cached[1] - REFRESH_MARGIN > time.time():
                return self._cached[0]
            self._cached = await self._fetch()
            return self._cached[0]

    def invalidate(self) -> None:
        """Forget the cached token (the node refused it: its key changed or the client was disabled)."""
        self._cached = None

    async def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
        self.fetched += 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                resp = await http.post(self.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise TokenError(f"token endpoint unreachable ({type(exc).__name__})") from exc
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error") if isinstance(body, dict) else None
            raise TokenError(f"token endpoint answered HTTP {resp.status_code} {error or ''}".strip())
        lifetime = float(body.get("expires_in") or 300)
        return str(body["access_token"]), time.time() + lifetime


def _secret(spec: dict, name: str) -> str | None:
    """A value given inline (`name`), in a file (`name_file`) or in an environment variable (`name_env`)."""
    if spec.get(name):
        return str(spec[name])
    if spec.get(f"{name}_file"):
        return Path(str(spec[f"{name}_file"])).read_text(encoding="utf-8")
    env = spec.get(f"{name}_env")
    if env:
        value = os.environ.get(str(env))
        if not value:
            raise ValueError(f"auth.{name}_env {env!r} is not set in the environment")
        return value
    return None


def _smart_backend(spec: dict) -> TokenSource:
    missing = [k for k in ("token_url", "client_id") if not spec.get(k)]
    key = _secret(spec, "key")
    if missing or not key:
        raise ValueError(
            "auth type 'smart-backend' needs token_url, client_id and key (or key_file / key_env): "
            f"missing {', '.join(missing + ([] if key else ['key']))}"
        )
    return SmartBackend(
        str(spec["token_url"]),
        str(spec["client_id"]),
        key,
        str(spec.get("alg", "RS384")),
        str(spec.get("scope", "system/*.rs")),
        str(spec["kid"]) if spec.get("kid") else None,
        float(spec.get("timeout", 5.0)),
    )


KINDS = {"none": lambda _spec: NoAuth(), "bearer": _bearer, "smart-backend": _smart_backend}


def token_source(spec: dict | None) -> TokenSource:
    """The TokenSource an `auth:` block of the config describes (no block: no token)."""
    spec = spec or {"type": "none"}
    kind = spec.get("type", "bearer" if ("token" in spec or "token_env" in spec) else "none")
    if kind not in KINDS:
        raise ValueError(f"unknown auth type {kind!r} (known: {', '.join(sorted(KINDS))})")
    return KINDS[kind](spec)

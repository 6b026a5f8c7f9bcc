"""Credentials the hub presents to a node: one `TokenSource` per node, chosen by the config's `auth.type`.

Today: `bearer` (a configured static token, or one read from an environment variable) and `none`.
SMART Backend Services (a signed JWT client assertion exchanged for an access token with scopes) is
the next kind: write a `TokenSource` whose `token()` fetches and caches the access token, and add it
to `KINDS`; the client asks for a token before every request, so refresh needs no other change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol


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


def _smart_backend(spec: dict) -> TokenSource:
    # The hook for SMART Backend Services (client_credentials with a signed JWT assertion): the client
    # (fhir_server.security's, once it has one) goes here; the config keys are token_url, client_id, key.
    raise ValueError(
        "auth type 'smart-backend' is not available yet in this build; use 'bearer' with a configured token"
    )


KINDS = {"none": lambda _spec: NoAuth(), "bearer": _bearer, "smart-backend": _smart_backend}


def token_source(spec: dict | None) -> TokenSource:
    """The TokenSource an `auth:` block of the config describes (no block: no token)."""
    spec = spec or {"type": "none"}
    kind = spec.get("type", "bearer" if ("token" in spec or "token_env" in spec) else "none")
    if kind not in KINDS:
        raise ValueError(f"unknown auth type {kind!r} (known: {', '.join(sorted(KINDS))})")
    return KINDS[kind](spec)

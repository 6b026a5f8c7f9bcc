"""Tokens and a secured app for the access-control tests."""

from __future__ import annotations

import base64
import time

import orjson
from jose import jwt

SECRET = "khoa-bi-mat-cua-so-y-te-tphcm-dai-hon-32-byte"
AUDIENCE = "https://lienthong.test/fhir"


def token(
    scope: str, key: str = SECRET, exp_in: int | None = 3600, aud: str | None = AUDIENCE, **claims
) -> str:
    """A signed access token (HS256 with the configured secret); an hour long, as module-level tokens
    must outlive a slow test run."""
    body: dict = {"sub": "his-benh-vien-cho-ray", "scope": scope, **claims}
    if exp_in is not None:
        body["exp"] = int(time.time()) + exp_in
    if aud is not None:
        body["aud"] = aud
    return jwt.encode(body, key, algorithm="HS256")


def unsigned(scope: str) -> str:
    """A token with alg=none and no signature (the classic forgery)."""

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()

    claims = {"sub": "ke-mao-danh", "scope": scope, "exp": int(time.time()) + 300, "aud": AUDIENCE}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def bearer(scope: str, **kw) -> dict:
    """Authorization header for a token with these scopes (and claims)."""
    return {"Authorization": f"Bearer {token(scope, **kw)}"}

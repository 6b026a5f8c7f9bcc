"""Per-client rate limit (issue 13): a token bucket per caller, 429 with Retry-After when it is empty.

The caller is the verified principal's subject when authentication is on (the middleware runs inside
authentication), else the client address. Trusted system clients (LIENTHONG_RATE_LIMIT_EXEMPT, e.g.
the hub or a hospital HIS pushing its nightly export) are never limited. Buckets live in the process:
with `serve --workers N` each worker allows the rate on its own.
"""

from __future__ import annotations

import math
import time

import orjson

from fhir_server.errors import FhirError
from fhir_server.i18n import accept_language, msg

# Liveness and scraping are not the clients' traffic.
_UNLIMITED_PATHS = ("/healthz", "/metrics")
_MAX_BUCKETS = 100_000


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take()` returns 0 when allowed, else seconds to wait."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> float:
        """Spend one token if there is one; otherwise how long until there is."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimitMiddleware:
    """Pure ASGI token-bucket limiter keyed by caller."""

    def __init__(self, app, rate: float, burst: int, exempt: frozenset[str]) -> None:
        self.app = app
        self.rate = rate
        self.burst = max(1, burst)
        self.exempt = exempt
        self.buckets: dict[str, TokenBucket] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in _UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        principal = (scope.get("state") or {}).get("principal")
        subject = getattr(principal, "subject", None)
        if subject and subject in self.exempt:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = f"sub:{subject}" if subject else f"ip:{client[0] if client else '?'}"
        now = time.monotonic()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= _MAX_BUCKETS:
                self.buckets.clear()  # bounded memory; a reset only ever lets callers through
            bucket = self.buckets[key] = TokenBucket(self.rate, self.burst, now)
        wait = bucket.take(now)
        if wait == 0:
            await self.app(scope, receive, send)
            return
        await _too_many(scope, send, max(1, math.ceil(wait)))


async def _too_many(scope, send, retry_after: int) -> None:
    lang = "en"
    for key, value in scope.get("headers", ()):
        if key == b"accept-language":
            lang = accept_language(value.decode("latin-1"))
    err = FhirError.make(429, "throttled", msg("Too many requests from this client; retry later"))
    body = orjson.dumps(err.localized(lang))
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/fhir+json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""One node over HTTP: requests with the node's credentials, failures classified for the partial-result
OperationOutcome (slow, down, refused, broken)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import orjson

from fhir_server.hub.auth import TokenError
from fhir_server.hub.config import NodeConfig

FHIR_JSON = "application/fhir+json"


class NodeFailure(Exception):
    """A node did not give a usable answer; `kind` is timeout | down | refused | error."""

    def __init__(self, node: str, kind: str, detail: str):
        super().__init__(f"{node}: {kind} ({detail})")
        self.node = node
        self.kind = kind
        self.detail = detail


@dataclass
class NodeClient:
    """Requests to one node through a shared connection pool."""

    node: NodeConfig
    http: httpx.AsyncClient

    async def request(self, method: str, path_or_url: str, *, params=None, body: dict | None = None) -> dict:
        """One FHIR request; returns the parsed JSON body or raises NodeFailure."""
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.node.url(path_or_url)
        headers = {"Accept": FHIR_JSON}
        try:
            token = await self.node.auth.token()
        except TokenError as exc:
            raise NodeFailure(self.node.name, "refused", str(exc)) from exc
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content = None
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
            content = orjson.dumps(body)
        try:
            resp = await self.http.request(
                method, url, params=params, content=content, headers=headers, timeout=self.node.timeout
            )
        except httpx.TimeoutException as exc:
            raise NodeFailure(self.node.name, "timeout", type(exc).__name__) from exc
        except httpx.TransportError as exc:  # refused connection, reset mid-answer, DNS...
            raise NodeFailure(self.node.name, "down", type(exc).__name__) from exc
        if resp.status_code == 401 and hasattr(self.node.auth, "invalidate"):
            self.node.auth.invalidate()  # the next request fetches a fresh token
        if resp.status_code in (401, 403):
            raise NodeFailure(self.node.name, "refused", f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise NodeFailure(self.node.name, "error", f"HTTP {resp.status_code}")
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise NodeFailure(self.node.name, "error", "answer is not JSON") from exc

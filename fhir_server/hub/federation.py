"""Federated queries: the same question to every node at once (httpx async), each node within its own
timeout, the answers merged into one Bundle (see merge.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import httpx

from fhir_server.hub.client import NodeClient, NodeFailure
from fhir_server.hub.config import HubConfig, NodeConfig
from fhir_server.hub.merge import NodeAnswer, merged_bundle

MAX_PAGES = 20  # pages of one node's $everything the hub follows before it says "truncated"
SEARCH_COUNT = 100  # Patients asked of each node per search


class Federation:
    """Fans questions out to the configured nodes over one shared connection pool."""

    def __init__(self, config: HubConfig, http: httpx.AsyncClient | None = None):
        self.config = config
        self.http = http or httpx.AsyncClient(limits=httpx.Limits(max_connections=64))
        self.clients = {n.name: NodeClient(n, self.http) for n in config.nodes}

    async def close(self) -> None:
        """Release the connection pool."""
        await self.http.aclose()

    async def _fan_out(
        self, work: Callable[[NodeClient], Awaitable[NodeAnswer]]
    ) -> tuple[list[NodeAnswer], list[tuple[NodeFailure, NodeConfig]]]:
        """Run `work` on every node in parallel; a node gets its own timeout for all its requests."""

        async def one(client: NodeClient) -> NodeAnswer:
            try:
                return await asyncio.wait_for(work(client), client.node.timeout)
            except TimeoutError as exc:
                raise NodeFailure(client.node.name, "timeout", "no answer in time") from exc

        results = await asyncio.gather(*(one(c) for c in self.clients.values()), return_exceptions=True)
        answers, failures = [], []
        for client, result in zip(self.clients.values(), results):
            if isinstance(result, NodeFailure):
                failures.append((result, client.node))
            elif isinstance(result, BaseException):
                failures.append((NodeFailure(client.node.name, "error", type(result).__name__), client.node))
            else:
                answers.append(result)
        return answers, failures

    async def search_patients(self, params: list[tuple[str, str]], self_url: str) -> dict:
        """Patient search (e.g. identifier=CCCD system|value) on every node, one merged searchset."""
        query = [(k, v) for k, v in params if k not in ("_count", "_format")] + [
            ("_count", str(SEARCH_COUNT))
        ]

        async def work(client: NodeClient) -> NodeAnswer:
            bundle = await client.request("GET", "Patient", params=query)
            entries = [
                e for e in bundle.get("entry") or [] if (e.get("search") or {}).get("mode") != "outcome"
            ]
            more = any(link.get("relation") == "next" for link in bundle.get("link") or [])
            return NodeAnswer(client.node, entries, truncated=more)

        answers, failures = await self._fan_out(work)
        return merged_bundle(answers, failures, self_url=self_url)

    async def match(self, parameters: dict, self_url: str) -> dict:
        """Patient/$match on every node; candidates of the same person collapsed, best score first."""

        async def work(client: NodeClient) -> NodeAnswer:
            bundle = await client.request("POST", "Patient/$match", body=parameters)
            return NodeAnswer(client.node, list(bundle.get("entry") or []))

        answers, failures = await self._fan_out(work)
        return merged_bundle(answers, failures, self_url=self_url, sort_by_score=True)

    async def everything(self, identifier: str, params: list[tuple[str, str]], self_url: str) -> dict:
        """Every node's Patient/$everything for the Patients it holds under `identifier` (system|value)."""
        passed = [(k, v) for k, v in params if k in ("start", "end", "_since", "_type")]

        async def work(client: NodeClient) -> NodeAnswer:
            found = await client.request(
                "GET", "Patient", params={"identifier": identifier, "_elements": "id"}
            )
            ids = [
                e["resource"]["id"]
                for e in found.get("entry") or []
                if (e.get("resource") or {}).get("resourceType") == "Patient"
            ]
            answer = NodeAnswer(client.node)
            seen: set[str] = set()
            for pid in ids:
                if f"Patient/{pid}" in seen:
                    continue  # already returned by the node's $everything of a linked record
                url: str | None = client.node.url(
                    f"Patient/{pid}/$everything?" + urlencode(passed + [("_count", "1000")])
                )
                pages = 0
                while url and pages < MAX_PAGES:
                    page = await client.request("GET", url)
                    pages += 1
                    for e in page.get("entry") or []:
                        r = e.get("resource") or {}
                        ref = f"{r.get('resourceType')}/{r.get('id')}"
                        if ref not in seen:
                            seen.add(ref)
                            answer.entries.append(e)
                    url = next(
                        (lk["url"] for lk in page.get("link") or [] if lk.get("relation") == "next"), None
                    )
                answer.truncated = answer.truncated or url is not None
            return answer

        answers, failures = await self._fan_out(work)
        return merged_bundle(answers, failures, self_url=self_url)

    async def status(self) -> list[dict]:
        """Each node's reachability and FHIR version (from its CapabilityStatement)."""

        async def work(client: NodeClient) -> NodeAnswer:
            cap = await client.request("GET", "metadata")
            return NodeAnswer(
                client.node, [{"resource": {"resourceType": "x", "fhirVersion": cap.get("fhirVersion")}}]
            )

        answers, failures = await self._fan_out(work)
        out = [
            {
                "node": a.node.name,
                "base_url": a.node.base_url,
                "status": "up",
                "fhirVersion": a.entries[0]["resource"]["fhirVersion"],
            }
            for a in answers
        ]
        out += [
            {"node": n.name, "base_url": n.base_url, "status": f.kind, "detail": f.detail}
            for f, n in failures
        ]
        return sorted(out, key=lambda x: x["node"])

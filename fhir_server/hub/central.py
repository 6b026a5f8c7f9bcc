"""Central mode: the hub pulls committed changes from each node's outbox and keeps a copy.

One pull = `GET [node]/$outbox` → one transaction on the hub's store (the copies, each carrying
`meta.source` = the node's versioned URL and the node's origin tag, plus one Provenance naming the
node and the copied resources) → `POST [node]/$outbox-ack`. A crash or a lost ack makes the node send
the same changes again; re-applying them changes nothing (identical content is a no-op, and the
Provenance id and content are derived from what was copied), so delivery is at least once and the
copy is exact. The hub links the copied Patients itself (origin "hub").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from fhir_server.hub.client import NodeClient, NodeFailure
from fhir_server.hub.config import HubConfig, NodeConfig
from fhir_server.hub.merge import ORIGIN_SYSTEM
from fhir_server.ids import deterministic_id
from fhir_server.interactions.bundles import transaction
from fhir_server.logsafe import log_failure
from fhir_server.operations.outbox import SEQ_URL

log = logging.getLogger("lienthong.hub")
ORIGIN = "hub"


def attach_hub_linker(store):
    """Link the Patients the hub copies (commits of origin "hub") across hospitals."""
    from fhir_server.identity.hook import Linker

    return Linker(store, origins=frozenset({ORIGIN})).attach()


def _copy(node: NodeConfig, entry: dict) -> dict | None:
    """A transaction entry writing the node's change on the hub."""
    request = entry.get("request") or {}
    url = request.get("url", "")
    if request.get("method") == "DELETE":
        return {"request": {"method": "DELETE", "url": url}}
    resource = entry.get("resource")
    if not isinstance(resource, dict):
        return None
    meta = dict(resource.get("meta") or {})
    version = meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    meta["source"] = node.url(f"{url}/_history/{version}") if version else node.url(url)
    tags = [t for t in meta.get("tag") or [] if t.get("system") != ORIGIN_SYSTEM]
    meta["tag"] = [*tags, {"system": ORIGIN_SYSTEM, "code": node.name, "display": node.base_url}]
    resource = {**resource, "meta": meta}
    return {"resource": resource, "request": {"method": "PUT", "url": url}}


def _provenance(node: NodeConfig, entries: list[dict]) -> dict:
    """One Provenance for the copied batch, its id and content derived from what was copied."""
    sources = sorted(
        (e.get("request") or {}).get("url", "") + "|" + ((e.get("response") or {}).get("etag") or "")
        for e in entries
    )
    digest = hashlib.sha256("\n".join(sources).encode()).hexdigest()
    recorded = max(((e.get("response") or {}).get("lastModified") or "") for e in entries) or None
    targets = [
        {"reference": (e.get("request") or {}).get("url")}
        for e in entries
        if (e.get("request") or {}).get("method") == "PUT"
    ]
    return {
        "resourceType": "Provenance",
        "id": deterministic_id("Provenance", "hub-copy", node.name, digest),
        "target": targets or [{"display": "deletions only"}],
        "recorded": recorded or "1970-01-01T00:00:00Z",
        "activity": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE"}]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": {
                    "identifier": {"system": ORIGIN_SYSTEM, "value": node.name},
                    "display": node.base_url,
                },
            }
        ],
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {"system": ORIGIN_SYSTEM, "value": node.name},
                    "display": node.base_url,
                },
            }
        ],
    }


def copy_bundle(node: NodeConfig, entries: list[dict]) -> dict:
    """The hub-side transaction for one pull."""
    copies = [c for e in entries if (c := _copy(node, e)) is not None]
    prov = _provenance(node, entries)
    copies.append({"resource": prov, "request": {"method": "PUT", "url": f"Provenance/{prov['id']}"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": copies}


def _acks(entries: list[dict]) -> dict:
    values = []
    for e in entries:
        seq = next((x.get("valueDecimal") for x in e.get("extension") or [] if x.get("url") == SEQ_URL), None)
        if seq is not None:
            values.append({"name": "ack", "valueString": f"{e['request']['url']}@{int(seq)}"})
    return {"resourceType": "Parameters", "parameter": values}


async def pull_node(store, client: NodeClient, batch: int = 500, ack: bool = True) -> int:
    """Copy one batch of a node's changes onto the hub (one transaction), then acknowledge it;
    returns how many changes were copied (0: the node's outbox is empty)."""
    page = await client.request("GET", "$outbox", params={"_count": str(batch)})
    entries = [e for e in page.get("entry") or [] if (e.get("request") or {}).get("url")]
    if not entries:
        return 0
    bundle = copy_bundle(client.node, entries)
    # Lenient references: the node checked them; a target may come in a later pull.
    await asyncio.to_thread(transaction, store, bundle, False, ORIGIN, "lenient")
    if ack:
        await client.request("POST", "$outbox-ack", body=_acks(entries))
    return len(entries)


async def pull_all(store, clients: list[NodeClient], batch: int = 500) -> dict[str, int]:
    """Drain every node's outbox once (nodes in parallel); a node that fails is retried next round."""

    async def drain(client: NodeClient) -> int:
        total = 0
        while True:
            n = await pull_node(store, client, batch)
            total += n
            if n < batch:
                return total

    results = await asyncio.gather(*(drain(c) for c in clients), return_exceptions=True)
    out = {}
    for client, result in zip(clients, results):
        if isinstance(result, BaseException):
            kind = result.kind if isinstance(result, NodeFailure) else type(result).__name__
            log.warning("pull from node %s failed (%s); retrying next round", client.node.name, kind)
            out[client.node.name] = -1
        else:
            out[client.node.name] = result
    return out


async def pull_forever(store, federation, config: HubConfig) -> None:
    """The central hub's loop: pull every node, wait `pull_interval`, again."""
    clients = list(federation.clients.values())
    while True:
        try:
            await pull_all(store, clients, config.pull_batch)
        except Exception as exc:  # the hub's own database is away: try again next round
            log_failure(log, "central pull failed", exc)
        await asyncio.sleep(config.pull_interval)

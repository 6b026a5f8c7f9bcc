"""searchset Bundles, for type/system search and operations that return lists ($everything, ...).

Entries are spliced from the stored JSON bytes without re-parsing them (unless _summary/_elements asks
for a trimmed copy), so a page of 50 resources costs one small dict serialization plus byte joins.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from urllib.parse import urlencode

import orjson

from fhir_server.errors import operation_outcome
from fhir_server.search.page import Hit, Page
from fhir_server.search.query import SearchRequest
from fhir_server.search.shaping import shape
from fhir_server.timeutil import instant, now_us


def entry_bytes(base: str, res_type: str, res_id: str, content: bytes, mode: str) -> bytes:
    """One Bundle.entry with the stored resource bytes as they are."""
    return (
        b'{"fullUrl":'
        + orjson.dumps(f"{base}/{res_type}/{res_id}")
        + b',"resource":'
        + bytes(content)
        + b',"search":{"mode":"'
        + mode.encode()
        + b'"}}'
    )


def outcome_entry(issues: list[str]) -> bytes:
    """An OperationOutcome entry (search.mode=outcome) carrying warnings about the request."""
    outcome = operation_outcome("warning", "not-supported", issues[0])
    outcome["issue"] += [
        {"severity": "warning", "code": "not-supported", "diagnostics": m} for m in issues[1:]
    ]
    return b'{"resource":' + orjson.dumps(outcome) + b',"search":{"mode":"outcome"}}'


def searchset(
    links: list[dict], total: int | None, entries: Iterable[bytes], bundle_type: str = "searchset"
) -> bytes:
    """Assemble a Bundle from its links, total and pre-serialized entries."""
    head: dict = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(now_us())},
        "type": bundle_type,
    }
    if total is not None:
        head["total"] = total
    head["link"] = links
    body = orjson.dumps(head)
    parts = list(entries)
    if not parts:
        return body
    return body[:-1] + b',"entry":[' + b",".join(parts) + b"]}"


def link(path: str, query: list[tuple[str, str]], relation: str) -> dict:
    """A Bundle.link whose URL is the path plus the (name, value) query pairs."""
    return {"relation": relation, "url": path + ("?" + urlencode(query) if query else "")}


def search_bundle(
    res_type: str | None, params: list[tuple[str, str]], req: SearchRequest, page: Page, base_url: str
) -> bytes:
    """The searchset of one search page, with self/next/previous links and included resources."""
    base = base_url.rstrip("/")
    path = f"{base}/{res_type}" if res_type else base
    # The self link says which parameters the search actually used (R4 search.html#errors): the ones
    # ignored under lenient handling are left out, and named in the OperationOutcome entry instead.
    ignored = set(req.ignored)
    keep = [(k, v) for k, v in params if k != "_page_token" and k not in ignored]

    def token_link(relation: str, token: str | None) -> dict:
        return link(path, keep + ([("_page_token", token)] if token else []), relation)

    links = [token_link("self", req.page_token)]
    if page.next_token:
        links.append(token_link("next", page.next_token))
    if page.prev_token:
        links.append(token_link("previous", page.prev_token))
    shaped = req.summary in ("true", "text", "data") or bool(req.elements)

    def entry(hit: Hit, mode: str) -> bytes:
        content = hit.content
        if shaped:
            content = orjson.dumps(shape(orjson.loads(content), req.summary, req.elements))
        return entry_bytes(base, hit.res_type, hit.res_id, content, mode)

    entries = [entry(hit, "match") for hit in page.rows]
    entries += [entry(hit, "include") for hit in page.included]
    if page.issues:
        entries.append(outcome_entry(page.issues))
    return searchset(links, page.total, entries)

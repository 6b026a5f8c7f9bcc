"""Table-driven search checks shared by the search test modules."""

from __future__ import annotations

import httpx


def ids(bundle: dict, mode: str = "match") -> set[str]:
    """Ids of the entries with a given search mode."""
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode}


async def mismatches(client: httpx.AsyncClient, cases: list[tuple[str, set[str]]]) -> list[tuple]:
    """Run each (query, expected ids) case; return the ones whose searchset differs (empty = all pass)."""
    failures: list[tuple] = []
    for query, expected in cases:
        resp = await client.get("/" + query)
        if resp.status_code != 200:
            failures.append((query, resp.status_code, resp.text[:200]))
            continue
        assert resp.headers["content-type"].startswith("application/fhir+json")
        bundle = resp.json()
        assert bundle["type"] == "searchset"
        if ids(bundle) != expected:
            failures.append((query, sorted(ids(bundle)), sorted(expected)))
    return failures

"""Search parameter registry: the official R4 definitions (vendored data) plus SearchParameter resources
posted to the server. One process-wide instance, loaded on first use.

Custom parameters change only after the SearchParameter that defines them is committed (storage calls
`reload_custom` with the committed set when its version row moves), never from inside a write.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterable
from functools import cache
from importlib import resources

import orjson

from fhir_server.search.derived import mark_derived
from fhir_server.search.params import COLUMN_PARAMS, NOT_SUPPORTED, SearchParam

DATA = "fhir_server.search.data"


def _load_gz(name: str):
    return orjson.loads(gzip.decompress(resources.files(DATA).joinpath(name).read_bytes()))


def _from_resource(sp: dict, custom: bool) -> SearchParam | None:
    if not sp.get("code") or not sp.get("type") or not sp.get("base"):
        return None
    return SearchParam(
        code=sp["code"],
        type=sp["type"],
        url=sp.get("url") or f"urn:custom:{sp['code']}",
        base=list(sp["base"]),
        expression=sp.get("expression"),
        target=list(sp.get("target") or []),
        components=[(c.get("definition", ""), c.get("expression", "")) for c in sp.get("component") or []],
        description=sp.get("description"),
        custom=custom,
    )


class Registry:
    """All known search parameters by resource type and by canonical URL."""

    def __init__(self) -> None:
        self.by_url: dict[str, SearchParam] = {}
        self.by_type: dict[str, dict[str, SearchParam]] = {}
        self.common: dict[str, SearchParam] = {}
        self._lock = threading.Lock()
        self.generation = 0
        summary = _load_gz("summary-elements-r4.json.gz")
        self.summary: dict[str, dict[str, list[str]]] = summary
        self.resource_types: set[str] = set(summary)
        for sp in _load_gz("search-parameters-r4.json.gz"):
            param = _from_resource(sp, custom=False)
            if param is not None:
                self._add(param)
        mark_derived(self)

    def _add(self, param: SearchParam) -> None:
        self.by_url[param.url] = param
        for base in param.base:
            if base in ("Resource", "DomainResource"):
                self.common[param.code] = param
            else:
                self.by_type.setdefault(base, {})[param.code] = param
        self.generation += 1

    def params(self, res_type: str) -> dict[str, SearchParam]:
        """code -> parameter for one resource type (including the common ones)."""
        return {**self.common, **self.by_type.get(res_type, {})}

    def get(self, res_type: str, code: str) -> SearchParam | None:
        """One parameter of a type, or None."""
        return self.by_type.get(res_type, {}).get(code) or self.common.get(code)

    def register(self, sp: dict) -> SearchParam | None:
        """Add (or replace) a custom SearchParameter resource; official definitions are never overridden."""
        if sp.get("status") not in (None, "active", "draft"):
            return None
        param = _from_resource(sp, custom=True)
        if param is None:
            return None
        existing = self.by_url.get(param.url)
        if existing is not None and not existing.custom:
            return existing
        with self._lock:
            for base in param.base:
                current = self.get(base, param.code)
                if current is not None and not current.custom and current.url != param.url:
                    return current  # a custom param may not shadow an official code
            self._add(param)
        return param

    def reload_custom(self, resources: Iterable[dict]) -> int:
        """Replace every custom parameter by those of these SearchParameter resources (the committed
        state of the database); returns how many were registered."""
        with self._lock:
            for url in [u for u, p in self.by_url.items() if p.custom]:
                param = self.by_url.pop(url)
                for base in param.base:
                    table = (
                        self.common if base in ("Resource", "DomainResource") else self.by_type.get(base, {})
                    )
                    if table.get(param.code) is param:
                        del table[param.code]
            self.generation += 1
        return sum(1 for sp in resources if self.register(sp) is not None)

    def capability(self, res_type: str) -> list[dict]:
        """Search parameters supported for a type, for the CapabilityStatement."""
        out = []
        for code, param in sorted(self.params(res_type).items()):
            if code in NOT_SUPPORTED or param.type == "special" or code == "phonetic":
                continue
            if param.type == "composite" and len(param.components) != 2:
                continue
            if not param.expression and code not in COLUMN_PARAMS:
                continue
            entry = {"name": code, "type": param.type, "definition": param.url}
            if param.description:
                entry["documentation"] = param.description
            out.append(entry)
        return out


@cache
def get_registry() -> Registry:
    """The process-wide registry (data files are read once)."""
    return Registry()

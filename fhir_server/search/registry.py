"""Search parameter registry: the official R4 definitions (vendored data) plus SearchParameter resources
posted to the server. One process-wide instance, loaded on first use."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import orjson

from fhir_server.search.derived import Source, mark_derived
from fhir_server.search.fhirpath import Extractor, compile_for_type, compile_relative

DATA = "fhir_server.search.data"
# Parameters defined for Resource/DomainResource that need no index (served from the resource table)
# or are stated as not supported.
COLUMN_PARAMS = {"_id", "_lastUpdated"}
NOT_SUPPORTED = {"_text", "_content", "_list", "_query", "_filter", "_has_not", "near", "_containedType"}


@dataclass
class SearchParam:
    """One search parameter as the engine uses it."""

    code: str
    type: str
    url: str
    base: list[str]
    expression: str | None
    target: list[str] = field(default_factory=list)
    components: list[tuple[str, str]] = field(default_factory=list)  # (definition url, expression)
    description: str | None = None
    custom: bool = False
    # res_type -> where this parameter's rows are instead of its own (see search/derived.py); the
    # indexer writes none for those types. One parameter may be derived for some bases only.
    derived_from: dict[str, tuple[Source, ...]] = field(default_factory=dict)

    def extractor(self, res_type: str) -> Extractor | None:
        """Compiled extractor of this parameter's values for one resource type."""
        if not self.expression:
            return None
        return compile_for_type(self.expression, res_type)

    def component_extractors(self) -> list[Extractor]:
        """Extractors of composite components, relative to the composite's element."""
        return [compile_relative(expr) for _, expr in self.components]


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

    def load_custom(self, conn) -> int:
        """Register every SearchParameter resource stored in the database; returns how many."""
        from sqlalchemy import and_, select

        from fhir_server.storage.schema import resource

        rows = conn.execute(
            select(resource.c.content).where(
                and_(resource.c.res_type == "SearchParameter", resource.c.deleted.is_(False))
            )
        ).all()
        count = 0
        for (content,) in rows:
            if content and self.register(orjson.loads(content)) is not None:
                count += 1
        return count


@cache
def get_registry() -> Registry:
    """The process-wide registry (data files are read once)."""
    return Registry()

"""The search parameter model: one parameter as the engine uses it, and where its rows come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from fhir_server.search.fhirpath import Extractor, compile_for_type, compile_relative

# Parameters defined for Resource/DomainResource that need no index (served from the resource table)
# or are stated as not supported.
COLUMN_PARAMS = {"_id", "_lastUpdated"}
NOT_SUPPORTED = {"_text", "_content", "_list", "_query", "_filter", "_has_not", "near", "_containedType"}


@dataclass(frozen=True)
class Source:
    """Rows of parameter `code` (of the same resource type), only those pointing at `target_type` if set."""

    code: str
    target_type: str | None = None


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


class ParamTable(Protocol):
    """What derived-parameter logic and query building read of a registry."""

    by_url: dict[str, SearchParam]
    by_type: dict[str, dict[str, SearchParam]]
    common: dict[str, SearchParam]

    def get(self, res_type: str, code: str) -> SearchParam | None:
        """One parameter of a type, or None."""
        ...

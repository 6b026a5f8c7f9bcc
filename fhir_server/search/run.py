"""Run a FHIR search from its raw parameters against storage (or a unit of work) into Bundle bytes."""

from __future__ import annotations

from typing import Protocol

from fhir_server.errors import FhirError
from fhir_server.search.bundle import search_bundle
from fhir_server.search.page import Page
from fhir_server.search.query import Limits, SearchRequest, parse_request
from fhir_server.search.registry import get_registry


class Searchable(Protocol):
    """Storage or a unit of work: whatever executes a parsed search."""

    def search(
        self,
        res_type: str | None,
        req: SearchRequest,
        *,
        base_url: str,
        strict: bool = False,
        default_count: int = 50,
        types: list[str] | None = None,
    ) -> Page:
        """One page of results."""
        ...


def run_search(
    source: Searchable,
    res_type: str | None,
    params: list[tuple[str, str]],
    base_url: str,
    strict: bool = False,
    default_count: int = 50,
    max_count: int = 1000,
    limits: Limits | None = None,
) -> bytes:
    """Parse, execute and serialize a type (or system, when res_type is None) search."""
    req = parse_request(params, max_count, limits)
    types = None
    if res_type is None and req.types:
        known = get_registry().resource_types
        unknown = [t for t in req.types if t not in known]
        if unknown:
            raise FhirError.bad_request(
                f"unknown resource type(s) in _type: {', '.join(unknown)}", expression="_type"
            )
        types = req.types
        if len(types) == 1:
            res_type, types = types[0], None
    if strict and req.issues:
        raise FhirError.bad_request(req.issues[0], code="not-supported")
    page = source.search(
        res_type, req, base_url=base_url, strict=strict, default_count=default_count, types=types
    )
    return search_bundle(res_type, params, req, page, base_url)

"""Search parameters whose index rows are exactly other parameters' rows, so they are never written.

A parameter P of a resource type is derived when the union members of its FHIRPath expression (for
that type) are exactly covered by other parameters of the same type and kind:

- a union: Observation `combo-code` = `Observation.code | Observation.component.code`, which are the
  expressions of `code` and `component-code`;
- a filtered reference: `patient` = `Observation.subject.where(resolve() is Patient)` while `subject`
  = `Observation.subject`; its rows are `subject` rows with target_type = 'Patient' (the type in the
  reference string, which is what `resolve() is` tests; a reference typed only by Reference.type,
  such as an external urn:uuid, is no longer found as `patient`);
- an exact duplicate (Patient `phonetic` = `name`): the code sorting first keeps the rows.

The rule is read from the vendored official definitions when the registry loads; custom parameters
are never derived (nor used as sources). The indexer skips derived parameters and every SQL site that
picks index rows by parameter goes through `sources` (storage's `param_clause`) or `expand_pairs`,
which widen `param = code` to the sources' rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fhir_server.search.fhirpath import parse_fragment, split_top
from fhir_server.search.params import ParamTable, SearchParam, Source

_RESOLVE_IS = re.compile(r"^(?P<path>.+)\.where\(\s*resolve\(\)\s+is\s+(?P<type>\w+)\s*\)$")
# (path, type named by a trailing `.where(resolve() is Type)` or None)
Fragment = tuple[str, str | None]


# -- finding derived parameters (once, when the registry loads) --------------------------------------
def _fragments(param: SearchParam, res_type: str) -> frozenset[Fragment] | None:
    """The expression's union members that apply to `res_type`, or None when one needs fhirpathpy.

    Only compiled members qualify: fhirpathpy evaluates a whole union at once and drops all of it when
    one member fails, so a fallback union's rows are not always the union of its members' rows."""
    out: set[Fragment] = set()
    for fragment in split_top(param.expression or "", "|"):
        fragment = " ".join(fragment.split())
        if fragment[:1].islower():
            fragment = f"{res_type}.{fragment}"  # as compile_for_type does
        parsed = parse_fragment(fragment)
        if parsed is None:
            return None
        if parsed[0] not in (res_type, "Resource", "DomainResource"):
            continue
        m = _RESOLVE_IS.match(fragment) if param.type == "reference" else None
        out.add((m["path"], m["type"]) if m else (fragment, None))
    return frozenset(out)


def _signature(registry: ParamTable, param: SearchParam) -> tuple:
    """What must be equal for two parameters' rows to be interchangeable: kind, and for composites
    the component expressions and the kinds of the component definitions."""
    if param.type != "composite":
        return (param.type,)
    parts = []
    for url, expr in param.components:
        definition = registry.by_url.get(url)
        parts.append((" ".join(expr.split()), definition.type if definition else None))
    return ("composite", tuple(parts))


def _covers(
    frags: frozenset[Fragment], source: str, sfrags: frozenset[Fragment]
) -> list[tuple[Source, frozenset[Fragment]]]:
    """Ways one source's rows fit inside a parameter's rows: as they are, or filtered by target type."""
    if sfrags <= frags:
        return [(Source(source), sfrags)]
    if any(t is not None for _, t in sfrags):
        return []  # a filtered source is only used as it is
    out: list[tuple[Source, frozenset[Fragment]]] = []
    for target in sorted({t for _, t in frags if t is not None}):
        lifted: frozenset[Fragment] = frozenset((path, target) for path, _ in sfrags)
        if lifted <= frags:
            out.append((Source(source, target), lifted))
    return out


def _derive_type(registry: ParamTable, res_type: str) -> dict[str, tuple[Source, ...]]:
    """code -> sources for the derived parameters of one resource type."""
    candidates: dict[str, tuple[tuple, frozenset[Fragment]]] = {}
    for code, param in registry.by_type.get(res_type, {}).items():
        if param.custom or param.type == "special" or not param.expression:
            continue
        frags = _fragments(param, res_type)
        if frags:
            candidates[code] = (_signature(registry, param), frags)
    # Smaller parameters first (and unfiltered before filtered, then by code), so every possible
    # source is settled before the parameters it could cover; a source is never itself derived.
    order = sorted(
        candidates, key=lambda c: (len(candidates[c][1]), sum(t is not None for _, t in candidates[c][1]), c)
    )
    kept: dict[str, tuple[tuple, frozenset[Fragment]]] = {}
    derived: dict[str, tuple[Source, ...]] = {}
    for code in order:
        sig, frags = candidates[code]
        covers = [
            cover
            for source, (ssig, sfrags) in kept.items()
            if ssig == sig
            for cover in _covers(frags, source, sfrags)
        ]
        maximal = _maximal(covers)
        if maximal and frozenset().union(*(s for _, s in maximal)) == frags:
            derived[code] = tuple(source for source, _ in maximal)
        else:
            kept[code] = (sig, frags)
    return derived


def _maximal(covers: list[tuple[Source, frozenset[Fragment]]]) -> list[tuple[Source, frozenset[Fragment]]]:
    """Covers not inside another one (of equal ones, the first): the rest add OR branches, not rows."""
    return [
        (source, rows)
        for i, (source, rows) in enumerate(covers)
        if not any(rows < other or (rows == other and j < i) for j, (_, other) in enumerate(covers))
    ]


def mark_derived(registry: ParamTable) -> int:
    """Set `derived_from[res_type]` on every derived official parameter; returns how many (type, code)."""
    count = 0
    for res_type in sorted(registry.by_type):
        for code, sources in _derive_type(registry, res_type).items():
            registry.by_type[res_type][code].derived_from[res_type] = sources
            count += 1
    return count


# -- where a parameter's rows are -------------------------------------------------------------------------------
def sources(registry: ParamTable, res_type: str, code: str) -> tuple[Source, ...]:
    """Where the rows of parameter `code` of `res_type` are: its own, or its sources' (the one expansion)."""
    param = registry.get(res_type, code)
    if param is not None:
        found = param.derived_from.get(res_type)
        if found:
            return found
    return (Source(code),)


def expand_pairs(
    registry: ParamTable, pairs: Iterable[tuple[str, str]]
) -> tuple[tuple[str, str, str | None], ...]:
    """(res_type, param, target_type or None) rows to look up for (res_type, param) pairs, sorted."""
    out = {
        (res_type, s.code, s.target_type)
        for res_type, code in pairs
        for s in sources(registry, res_type, code)
    }
    return tuple(sorted(out, key=lambda t: (t[0], t[1], t[2] or "")))

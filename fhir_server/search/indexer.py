"""Extract search index rows from a resource at write time (the hot write path: no SQL, no validation)."""

from __future__ import annotations

from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.search.fhirpath import Extractor, element_names
from fhir_server.search.params import COLUMN_PARAMS, ParamTable, SearchParam
from fhir_server.search.registry import Registry, get_registry
from fhir_server.search.values import (
    address_unit_strings,
    date_rows,
    identifier_type_rows,
    number_rows,
    quantity_rows,
    reference_rows,
    string_rows,
    token_rows,
    uri_rows,
)
from fhir_server.text import fold

# Row kinds = search parameter types with their own index table (storage maps each to its table).
_S, _T, _R, _D, _N, _Q, _U, _C = (
    "string",
    "token",
    "reference",
    "date",
    "number",
    "quantity",
    "uri",
    "composite",
)
# Columns of each kind's rows after (rid, res_type, param), for callers that want dicts.
COLUMNS: dict[str, tuple[str, ...]] = {
    _S: ("value", "exact"),
    _T: ("system", "code", "text"),
    _R: ("target_type", "target_id", "url"),
    _D: ("lo", "hi"),
    _N: ("value",),
    _Q: ("system", "code", "unit", "value"),
    _U: ("value",),
    _C: ("system", "code", "v_system", "v_code", "v_num", "v_lo", "v_hi"),
}


# A type's plan, the positions that always run, and the positions per top-level element name.
_Dispatch = tuple[list[tuple[SearchParam, Extractor]], tuple[int, ...], dict[str, tuple[int, ...]]]


class Indexer:
    """Turns a resource into index rows per kind; storage inserts them with the resource's rid."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or get_registry()
        self._plans: dict[str, tuple[int, list[tuple[SearchParam, Extractor]]]] = {}
        self._dispatch: dict[str, tuple[int, _Dispatch]] = {}

    def _plan(self, res_type: str) -> list[tuple[SearchParam, Extractor]]:
        """(param, extractor) pairs for a type, rebuilt when custom parameters were registered."""
        cached = self._plans.get(res_type)
        if cached is not None and cached[0] == self.registry.generation:
            return cached[1]
        plan: list[tuple[SearchParam, Extractor]] = []
        for code, param in sorted(self.registry.params(res_type).items()):
            if code in COLUMN_PARAMS or param.type == "special":
                continue
            if res_type in param.derived_from:
                continue  # its rows are other parameters' rows (search/derived.py): never written
            extractor = param.extractor(res_type)
            if extractor is not None and param.type == "string" and not param.custom:
                extractor = _with_units(extractor, param, res_type)
            if extractor is not None:
                plan.append((param, extractor))
        self._plans[res_type] = (self.registry.generation, plan)
        return plan

    def rows(self, res_type: str, resource: dict) -> dict[str, list[dict]]:
        """Index rows per kind as dicts by column name, without `rid` (for tests and tools)."""
        out: dict[str, list[dict]] = {}
        for kind, tuples in self.tuples(0, res_type, resource).items():
            names = ("res_type", "param", *COLUMNS[kind])
            out[kind] = [dict(zip(names, t[1:], strict=True)) for t in tuples]
        return out

    def tuples(self, rid: int, res_type: str, resource: dict) -> dict[str, list[tuple]]:
        """Index rows per kind as tuples in the index table's column order, `rid` first (the write
        path: COPY takes them as they are)."""
        out: dict[str, list[tuple]] = {}
        plan, always, by_root = self._by_root(res_type)
        # Most parameters of a type find nothing: only those rooted in an element present run, in plan
        # order (rows come out exactly as when every parameter was tried).
        picked = set(always)
        for name in element_names(resource):
            found = by_root.get(name)
            if found is not None:
                picked.update(found)
        registry = self.registry
        for i in sorted(picked):
            param, extract = plan[i]
            values = extract(resource)
            if values:
                _emit(out, rid, res_type, param, values, registry)
        return out

    def _by_root(self, res_type: str) -> _Dispatch:
        """The type's plan with, per top-level element, the positions of the parameters rooted there."""
        cached = self._dispatch.get(res_type)
        if cached is not None and cached[0] == self.registry.generation:
            return cached[1]
        plan = self._plan(res_type)
        always: list[int] = []
        by_root: dict[str, list[int]] = {}
        for i, (_, extract) in enumerate(plan):
            roots = getattr(extract, "roots", None)
            if roots is None:
                always.append(i)
            else:
                for name in roots:
                    by_root.setdefault(name, []).append(i)
        dispatch = (plan, tuple(always), {k: tuple(v) for k, v in by_root.items()})
        self._dispatch[res_type] = (self.registry.generation, dispatch)
        return dispatch


# A token's system and code are one btree key (PostgreSQL refuses keys over 2,704 bytes). Tokens are
# matched exactly, so cutting them would make false matches: an over-long one is refused instead.
TOKEN_MAX_BYTES = 2000


def _check_token(rt: str, param: SearchParam, row: tuple) -> None:
    system, tcode = row[0], row[1]
    chars = (len(system) if isinstance(system, str) else 0) + (len(tcode) if isinstance(tcode, str) else 0)
    if chars * 4 <= TOKEN_MAX_BYTES:
        return  # cannot be too long, whatever the characters (the usual case: no encoding needed)
    size = sum(len(s.encode("utf-8")) for s in (system, tcode) if isinstance(s, str))
    if size > TOKEN_MAX_BYTES:
        raise FhirError.bad_request(
            msg(
                "{path}: value of {size} bytes is too long to index (limit {limit})",
                path=f"{rt}.{param.code}",
                size=size,
                limit=TOKEN_MAX_BYTES,
            ),
            code="too-long",
            expression=_element_of(rt, param),
        )


def _element_of(rt: str, param: SearchParam) -> str:
    """The element a parameter indexes on this type (its expression's branch for `rt`)."""
    for branch in (param.expression or "").split("|"):
        branch = branch.strip().lstrip("(")
        if branch.startswith(rt + "."):
            return branch
    return f"{rt}.{param.code}"


class _WithUnits:
    """An `address-state`-style extractor that also yields the province names and codes of both
    administrative eras carried as Address extensions (search by old or new province, values.py)."""

    __slots__ = ("inner", "roots")

    def __init__(self, inner: Extractor) -> None:
        self.inner = inner
        self.roots = getattr(inner, "roots", None)

    def __call__(self, resource: dict) -> list:
        values = list(self.inner(resource))
        return values + address_unit_strings(resource.get("address"), "province")


def _with_units(extractor: Extractor, param: SearchParam, res_type: str) -> Extractor:
    """Wrap the extractor of an official `<Type>.address.state` parameter (others unchanged)."""
    expression = " ".join((param.expression or "").split())
    if f"{res_type}.address.state" in expression:
        return _WithUnits(extractor)
    return extractor


def _emit(
    out: dict[str, list[tuple]], rid: int, rt: str, param: SearchParam, values: list, registry: ParamTable
) -> None:
    code = param.code
    kind = param.type
    if kind == "token":
        seen = set()
        rows = out.setdefault(_T, [])
        for v in values:
            for row in token_rows(v):
                _check_token(rt, param, row)
                if row not in seen:
                    seen.add(row)
                    rows.append((rid, rt, code, *row))
            for system, tcode in identifier_type_rows(v):
                rows.append((rid, rt, code + ":of-type", system, tcode, None))
    elif kind == "reference":
        refs: set[tuple] = set()
        rows = out.setdefault(_R, [])
        for v in values:
            for row in reference_rows(v):
                if row not in refs:
                    refs.add(row)
                    rows.append((rid, rt, code, *row))
            ident = v.get("identifier") if isinstance(v, dict) else None
            if isinstance(ident, dict):
                tokens = out.setdefault(_T, [])
                for ident_system, ident_code, _ in token_rows(ident):
                    _check_token(rt, param, (ident_system, ident_code))
                    tokens.append((rid, rt, code + ":identifier", ident_system, ident_code, None))
    elif kind == "date":
        rows = out.setdefault(_D, [])
        for lo, hi in {r for v in values for r in date_rows(v)}:
            rows.append((rid, rt, code, lo, hi))
    elif kind == "string":
        exacts: set[str] = set()
        rows = out.setdefault(_S, [])
        for v in values:
            for folded, exact in string_rows(v):
                if exact not in exacts:
                    exacts.add(exact)
                    rows.append((rid, rt, code, folded, exact))
    elif kind == "uri":
        rows = out.setdefault(_U, [])
        for value in {u for v in values for u in uri_rows(v)}:
            rows.append((rid, rt, code, value))
    elif kind == "quantity":
        rows = out.setdefault(_Q, [])
        for q in {q for v in values for q in quantity_rows(v)}:
            rows.append((rid, rt, code, *q))
    elif kind == "number":
        rows = out.setdefault(_N, [])
        for num in {n for v in values for n in number_rows(v)}:
            rows.append((rid, rt, code, num))
    elif kind == "composite":
        _emit_composite(out, rid, rt, param, values, registry)


def _emit_composite(
    out: dict[str, list[tuple]], rid: int, rt: str, param: SearchParam, values: list, registry: ParamTable
) -> None:
    if len(param.components) != 2:
        return
    first_def = registry.by_url.get(param.components[0][0])
    second_def = registry.by_url.get(param.components[1][0])
    if first_def is None or second_def is None or first_def.type != "token":
        return
    first, second = param.component_extractors()
    rows = out.setdefault(_C, [])
    for element in values:
        if not isinstance(element, dict):
            continue
        tokens = [t for v in first(element) for t in token_rows(v) if t[1] is not None]
        seconds = [x for v in second(element) for x in _second_values(second_def.type, v)]
        for system, tcode, _ in tokens:
            _check_token(rt, param, (system, tcode))
            for extra in seconds:
                rows.append((rid, rt, param.code, system, tcode, *extra))


# The composite's second value as (v_system, v_code, v_num, v_lo, v_hi).
def _second_values(kind: str, value) -> list[tuple]:
    if kind == "token":
        return [(s, c, None, None, None) for s, c, _ in token_rows(value) if c is not None]
    if kind == "quantity":
        return [(s, c, n, None, None) for s, c, _, n in quantity_rows(value)]
    if kind == "date":
        return [(None, None, None, lo, hi) for lo, hi in date_rows(value)]
    if kind == "string":
        return [(None, fold(value)[:255], None, None, None)] if isinstance(value, str) else []
    if kind == "number":
        return [(None, None, n, None, None) for n in number_rows(value)]
    return []

"""Extract search index rows from a resource at write time (the hot write path: no SQL, no validation)."""

from __future__ import annotations

from sqlalchemy import Table

from fhir_server.search.registry import COLUMN_PARAMS, Registry, SearchParam, get_registry
from fhir_server.search.tables import ALL_TABLES, TABLES
from fhir_server.search.values import (
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

_S, _T, _R = TABLES["string"], TABLES["token"], TABLES["reference"]
_D, _N, _Q, _U, _C = TABLES["date"], TABLES["number"], TABLES["quantity"], TABLES["uri"], TABLES["composite"]


class Indexer:
    """Turns a resource into rows for the index tables; storage inserts them with the resource's rid."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or get_registry()
        self.tables: list[Table] = list(ALL_TABLES)
        self._plans: dict[str, tuple[int, list[tuple[SearchParam, object]]]] = {}

    def _plan(self, res_type: str) -> list[tuple[SearchParam, object]]:
        """(param, extractor) pairs for a type, rebuilt when custom parameters were registered."""
        cached = self._plans.get(res_type)
        if cached is not None and cached[0] == self.registry.generation:
            return cached[1]
        plan = []
        for code, param in sorted(self.registry.params(res_type).items()):
            if code in COLUMN_PARAMS or param.type == "special":
                continue
            extractor = param.extractor(res_type)
            if extractor is not None:
                plan.append((param, extractor))
        self._plans[res_type] = (self.registry.generation, plan)
        return plan

    def rows(self, res_type: str, resource: dict) -> dict[Table, list[dict]]:
        """Return index rows per table (without `rid`, which storage fills in)."""
        if res_type == "SearchParameter":
            # New parameters take effect for resources written after this one.
            self.registry.register(resource)
        out: dict[Table, list[dict]] = {}
        for param, extract in self._plan(res_type):
            values = extract(resource)
            if values:
                _emit(out, res_type, param, values)
        return out


def _emit(out: dict[Table, list[dict]], rt: str, param: SearchParam, values: list) -> None:
    code = param.code
    kind = param.type
    if kind == "token":
        seen = set()
        rows = out.setdefault(_T, [])
        for v in values:
            for system, tcode, text in token_rows(v):
                key = (system, tcode, text)
                if key not in seen:
                    seen.add(key)
                    rows.append(
                        {"res_type": rt, "param": code, "system": system, "code": tcode, "text": text}
                    )
            for system, tcode in identifier_type_rows(v):
                rows.append(
                    {
                        "res_type": rt,
                        "param": code + ":of-type",
                        "system": system,
                        "code": tcode,
                        "text": None,
                    }
                )
    elif kind == "string":
        seen = set()
        rows = out.setdefault(_S, [])
        for v in values:
            for folded, exact in string_rows(v):
                if exact not in seen:
                    seen.add(exact)
                    rows.append({"res_type": rt, "param": code, "value": folded, "exact": exact})
    elif kind == "reference":
        seen = set()
        rows = out.setdefault(_R, [])
        for v in values:
            for ttype, tid, url in reference_rows(v):
                if (ttype, tid, url) not in seen:
                    seen.add((ttype, tid, url))
                    rows.append(
                        {"res_type": rt, "param": code, "target_type": ttype, "target_id": tid, "url": url}
                    )
            ident = v.get("identifier") if isinstance(v, dict) else None
            if isinstance(ident, dict):
                for system, tcode, _ in token_rows(ident):
                    out.setdefault(_T, []).append(
                        {
                            "res_type": rt,
                            "param": code + ":identifier",
                            "system": system,
                            "code": tcode,
                            "text": None,
                        }
                    )
    elif kind == "date":
        rows = out.setdefault(_D, [])
        for lo, hi in {r for v in values for r in date_rows(v)}:
            rows.append({"res_type": rt, "param": code, "lo": lo, "hi": hi})
    elif kind == "uri":
        rows = out.setdefault(_U, [])
        for value in {u for v in values for u in uri_rows(v)}:
            rows.append({"res_type": rt, "param": code, "value": value})
    elif kind == "quantity":
        rows = out.setdefault(_Q, [])
        for system, qcode, unit, num in {q for v in values for q in quantity_rows(v)}:
            rows.append(
                {"res_type": rt, "param": code, "system": system, "code": qcode, "unit": unit, "value": num}
            )
    elif kind == "number":
        rows = out.setdefault(_N, [])
        for num in {n for v in values for n in number_rows(v)}:
            rows.append({"res_type": rt, "param": code, "value": num})
    elif kind == "composite":
        _emit_composite(out, rt, param, values)


def _emit_composite(out: dict[Table, list[dict]], rt: str, param: SearchParam, values: list) -> None:
    registry = get_registry()
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
        seconds = second(element)
        for system, tcode, _ in tokens:
            for v in seconds:
                for extra in _second_values(second_def.type, v):
                    rows.append(
                        {
                            "res_type": rt,
                            "param": param.code,
                            "system": system,
                            "code": tcode,
                            "v_system": None,
                            "v_code": None,
                            "v_num": None,
                            "v_lo": None,
                            "v_hi": None,
                            **extra,
                        }
                    )


def _second_values(kind: str, value) -> list[dict]:
    if kind == "token":
        return [{"v_system": s, "v_code": c} for s, c, _ in token_rows(value) if c is not None]
    if kind == "quantity":
        return [{"v_system": s, "v_code": c, "v_num": n} for s, c, _, n in quantity_rows(value)]
    if kind == "date":
        return [{"v_lo": lo, "v_hi": hi} for lo, hi in date_rows(value)]
    if kind == "string":
        return [{"v_code": fold(value)[:255]}] if isinstance(value, str) else []
    if kind == "number":
        return [{"v_num": n} for n in number_rows(value)]
    return []

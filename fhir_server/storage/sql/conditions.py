"""Translate search filters into SQL conditions over the index tables (SQLAlchemy Core).

Every filter becomes `r.rid IN (SELECT rid FROM sp_<type> WHERE res_type=? AND param=? AND <value preds>)`
so each criterion uses one (res_type, param, value) index; comma values OR inside the subquery,
repeated parameters AND as separate subqueries. Chains and _has nest the same construction.
`param=?` always comes from `derived.param_clause`: a derived parameter reads its sources' rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Select, Table, and_, false, not_, or_, select, true
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import FromClause

from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.search.derived import sources
from fhir_server.search.params import NOT_SUPPORTED, ParamTable, SearchParam, Source
from fhir_server.search.query import Filter, number_bounds, parse_filter, split_prefix, split_values
from fhir_server.search.values import MAX_US, MIN_US, date_range, parse_reference
from fhir_server.storage.sql.index_tables import TABLES, sp_reference, sp_token
from fhir_server.storage.sql.schema import resource
from fhir_server.text import fold, nfc

TOP = "\U0010ffff"
_MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"not", "text", "missing", "of-type", "in", "not-in", "above", "below"},
    "reference": {"missing", "identifier"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"above", "below", "missing"},
    "composite": {"missing"},
}


class Unknown(Exception):
    """A parameter the server does not know or support; reported or rejected by the caller."""


class Conditions:
    """Builds WHERE clauses for one registry; `base_url` lets absolute local references match."""

    def __init__(self, registry: ParamTable, base_url: str | None = None) -> None:
        self.registry = registry
        self.base_url = (base_url or "").rstrip("/")

    # -- entry point ------------------------------------------------------------------------------
    def build(self, r: FromClause, res_type: str | None, flt: Filter) -> ColumnElement:
        """Condition on resource alias `r` (res_type None = any type: only common params)."""
        if flt.code == "_has":
            return self._has(r, res_type, flt)
        if flt.code in NOT_SUPPORTED:
            raise Unknown(msg("parameter {name!r} is not supported", name=flt.name))
        if flt.code == "_id":
            return self._id(r, flt)
        if flt.code == "_lastUpdated":
            return or_(*[self._date_pred(r.c.last_updated, r.c.last_updated, v) for v in flt.values])
        param = self.registry.get(res_type, flt.code) if res_type else self.registry.common.get(flt.code)
        if param is None or (param.type == "special"):
            raise Unknown(
                msg("unknown search parameter {code!r} for {type}", code=flt.code, type=res_type or "*")
            )
        if flt.chain:
            return self._chain(r, res_type, param, flt)
        mod = flt.modifier
        if mod is not None and param.type == "reference" and mod[:1].isupper():
            pass  # type modifier
        elif mod is not None and mod not in _MODIFIERS.get(param.type, set()):
            raise FhirError.bad_request(
                f"modifier :{mod} is not valid for {param.type} parameter {flt.code!r}",
                code="not-supported",
                expression=flt.name,
            )
        if mod in ("in", "not-in", "above", "below") and param.type == "token":
            raise FhirError.bad_request(
                f"modifier :{mod} needs terminology services, which this server does not provide",
                code="not-supported",
                expression=flt.name,
            )
        if mod == "missing":
            table = TABLES[param.type]
            has_rows = self._param(table, res_type, param.code)
            sub = select(table.c.rid).where(table.c.res_type == _rt(r, res_type), has_rows)
            if res_type is None:
                sub = select(table.c.rid).where(has_rows)
            missing = [v.lower() == "true" for v in flt.values]
            clauses = [r.c.rid.not_in(sub) if m else r.c.rid.in_(sub) for m in set(missing)]
            return or_(*clauses)
        table, preds, suffix = self._value_preds(param, mod, flt.values, flt.name)
        sub = select(table.c.rid).where(self._param(table, res_type, param.code, suffix), or_(*preds))
        if res_type is not None:
            sub = sub.where(table.c.res_type == res_type)
        if mod == "not":
            return r.c.rid.not_in(sub)
        return r.c.rid.in_(sub)

    def index_lookup(self, res_type: str, flt: Filter) -> tuple[Table, Select] | None:
        """`SELECT rid FROM <index table>` of a criterion that is one plain value match (no chain,
        `_has`, `:missing`, `:not`, common parameter), else None. Call after `build` accepted `flt`.

        Index rows exist only for current, non-deleted resources and carry their type, so the rids
        of this subquery ARE the result: a caller may order and limit it before joining `resource`."""
        if flt.code.startswith("_") or flt.chain or flt.modifier in ("missing", "not"):
            return None
        param = self.registry.get(res_type, flt.code)
        if param is None or param.type not in TABLES:
            return None
        table, preds, suffix = self._value_preds(param, flt.modifier, flt.values, flt.name)
        sub = select(table.c.rid).where(
            self._param(table, res_type, param.code, suffix), or_(*preds), table.c.res_type == res_type
        )
        return table, sub

    def _param(self, table, res_type: str | None, code: str, suffix: str = "") -> ColumnElement:
        """Rows of parameter `code` (its sources' rows when it is derived)."""
        return param_clause(table, self.registry, res_type, code, suffix)

    # -- special parameters -----------------------------------------------------------------------
    def _id(self, r: FromClause, flt: Filter) -> ColumnElement:
        if flt.modifier == "missing":
            return false() if flt.values == ["true"] else true()
        ids = [v.rsplit("/", 1)[-1] for v in flt.values]
        clause = r.c.res_id.in_(ids)
        return not_(clause) if flt.modifier == "not" else clause

    def _has(self, r: FromClause, res_type: str | None, flt: Filter) -> ColumnElement:
        parts = (flt.chain or "").split(":", 2)
        if len(parts) < 3 or not res_type:
            raise FhirError.bad_request(f"invalid _has parameter {flt.name!r}", expression=flt.name)
        source, ref_code, rest = parts
        ref_param = self.registry.get(source, ref_code)
        if ref_param is None or ref_param.type != "reference":
            raise Unknown(f"_has: {source} has no reference parameter {ref_code!r}")
        inner_r = resource.alias()
        inner = parse_filter(rest, flt.values[0] if flt.values else "")
        sel = select(inner_r.c.rid).where(
            inner_r.c.res_type == source, inner_r.c.deleted.is_(False), self.build(inner_r, source, inner)
        )
        refs = select(sp_reference.c.target_id).where(
            sp_reference.c.res_type == source,
            self._param(sp_reference, source, ref_code),
            sp_reference.c.target_type == res_type,
            sp_reference.c.url.is_(None),
            sp_reference.c.rid.in_(sel),
        )
        return r.c.res_id.in_(refs)

    def _chain(self, r: FromClause, res_type: str | None, param: SearchParam, flt: Filter) -> ColumnElement:
        if param.type != "reference":
            raise FhirError.bad_request(
                f"{flt.code!r} is not a reference parameter and cannot be chained", expression=flt.name
            )
        targets = [flt.modifier] if flt.modifier else (param.target or [])
        inner_filter = parse_filter(flt.chain or "", "")
        inner_filter.values = flt.values
        clauses = []
        for target in targets:
            if (
                inner_filter.code not in ("_id", "_lastUpdated", "_has")
                and self.registry.get(target, inner_filter.code) is None
            ):
                continue
            t = resource.alias()
            ids = select(t.c.res_id).where(
                t.c.res_type == target, t.c.deleted.is_(False), self.build(t, target, inner_filter)
            )
            sub = select(sp_reference.c.rid).where(
                sp_reference.c.res_type == res_type,
                self._param(sp_reference, res_type, param.code),
                sp_reference.c.target_type == target,
                sp_reference.c.url.is_(None),
                sp_reference.c.target_id.in_(ids),
            )
            clauses.append(r.c.rid.in_(sub))
        if not clauses:
            raise Unknown(
                f"chained parameter {flt.name!r}: no target type of {flt.code!r} "
                f"has a parameter {inner_filter.code!r}"
            )
        return or_(*clauses)

    # -- value predicates per type ---------------------------------------------------------------
    def _value_preds(self, param: SearchParam, mod: str | None, values: list[str], name: str):
        """(table, OR-ed value predicates, suffix of the row param: "" or a companion like ":of-type")."""
        kind = param.type
        suffix = ""
        if kind == "token":
            t = sp_token
            if mod == "of-type":
                suffix = ":of-type"
                preds = []
                for v in values:
                    parts = v.split("|")
                    if len(parts) != 3:
                        raise FhirError.bad_request(
                            f":of-type needs system|code|value, got {v!r}", expression=name
                        )
                    preds.append(and_(t.c.system == parts[0], t.c.code == f"{parts[1]}|{parts[2]}"))
                return t, preds, suffix
            if mod == "text":
                return t, [_prefix(t.c.text, fold(v)) for v in values], suffix
            return t, [self._token_pred(t, v) for v in values], suffix
        if kind == "string":
            t = TABLES["string"]
            if mod == "exact":
                return t, [t.c.exact == nfc(v) for v in values], suffix
            if mod == "contains":
                return (
                    t,
                    [t.c.value.like("%" + _escape_like(fold(v)) + "%", escape="\\") for v in values],
                    suffix,
                )
            return t, [_prefix(t.c.value, fold(v)) for v in values], suffix
        if kind == "reference":
            if mod == "identifier":
                return sp_token, [self._token_pred(sp_token, v) for v in values], ":identifier"
            t = sp_reference
            type_mod = mod if mod and mod[:1].isupper() else None
            return t, [self._reference_pred(param, type_mod, v) for v in values], suffix
        if kind == "date":
            t = TABLES["date"]
            return t, [self._date_pred(t.c.lo, t.c.hi, v) for v in values], suffix
        if kind == "number":
            t = TABLES["number"]
            return t, [_number_pred(t.c.value, v) for v in values], suffix
        if kind == "quantity":
            t = TABLES["quantity"]
            return t, [_quantity_pred(t.c.value, t.c.system, t.c.code, t.c.unit, v) for v in values], suffix
        if kind == "uri":
            t = TABLES["uri"]
            return t, [_uri_pred(t.c.value, mod, v) for v in values], suffix
        if kind == "composite":
            t = TABLES["composite"]
            return t, [self._composite_pred(param, t, v, name) for v in values], suffix
        raise Unknown(f"parameter type {kind!r} of {param.code!r} is not supported")

    @staticmethod
    def _token_pred(t, value: str) -> ColumnElement:
        if "|" in value:
            system, _, code = value.partition("|")
            if not system:
                return and_(t.c.system.is_(None), t.c.code == code)
            if not code:
                return t.c.system == system
            return and_(t.c.system == system, t.c.code == code)
        return t.c.code == value

    def _reference_pred(self, param: SearchParam, type_mod: str | None, value: str) -> ColumnElement:
        t = sp_reference
        if self.base_url and value.startswith(self.base_url + "/"):
            value = value[len(self.base_url) + 1 :]
        if "://" in value or value.startswith("urn:"):
            return t.c.url == value.split("|", 1)[0]
        if "/" in value:
            rtype, rid, _ = parse_reference(value)
            if type_mod and rtype != type_mod:
                return false()
            return and_(t.c.target_type == rtype, t.c.target_id == rid, t.c.url.is_(None))
        pred = and_(t.c.target_id == value, t.c.url.is_(None))
        if type_mod:
            pred = and_(pred, t.c.target_type == type_mod)
        return pred

    def _composite_pred(self, param: SearchParam, t, value: str, name: str) -> ColumnElement:
        if "$" not in value or len(param.components) != 2:
            raise FhirError.bad_request(
                f"composite {param.code!r} needs 'token$value', got {value!r}", expression=name
            )
        first, second = value.split("$", 1)
        second_def = self.registry.by_url.get(param.components[1][0])
        kind = second_def.type if second_def else "token"
        if kind == "token":
            from types import SimpleNamespace

            shim = SimpleNamespace(c=SimpleNamespace(system=t.c.v_system, code=t.c.v_code))
            second_pred = self._token_pred(shim, second)
        elif kind == "quantity":
            second_pred = _quantity_pred(t.c.v_num, t.c.v_system, t.c.v_code, t.c.v_code, second)
        elif kind == "date":
            second_pred = self._date_pred(t.c.v_lo, t.c.v_hi, second)
        elif kind == "number":
            second_pred = _number_pred(t.c.v_num, second)
        else:
            second_pred = _prefix(t.c.v_code, fold(second))
        return and_(self._token_pred(t, first), second_pred)

    @staticmethod
    def _date_pred(lo_col, hi_col, value: str) -> ColumnElement:
        prefix, text = split_prefix(value)
        rng = date_range(text)
        if rng is None:
            raise FhirError.bad_request(f"invalid date {value!r}")
        qlo, qhi = rng
        return _range_pred(prefix, lo_col, hi_col, qlo, qhi)


def _range_pred(prefix: str, lo_col, hi_col, qlo: int, qhi: int) -> ColumnElement:
    if prefix == "eq":
        return and_(lo_col >= qlo, hi_col <= qhi)
    if prefix == "ne":
        return or_(lo_col < qlo, hi_col > qhi)
    if prefix == "gt":
        return hi_col > qhi
    if prefix == "lt":
        return lo_col < qlo
    if prefix == "ge":
        return hi_col >= qlo
    if prefix == "le":
        return lo_col <= qhi
    if prefix == "sa":
        return lo_col > qhi
    if prefix == "eb":
        return hi_col < qlo
    # ap: within 10% of the distance between the value and now (at least a day).
    now = int(time.time() * 1_000_000)
    delta = max(86_400_000_000, abs(now - qlo) // 10)
    return and_(lo_col <= min(qhi + delta, MAX_US), hi_col >= max(qlo - delta, MIN_US))


def _number_pred(col, value: str) -> ColumnElement:
    prefix, text = split_prefix(value)
    num, low, high = number_bounds(text)
    ops: dict[str, Callable[[], ColumnElement]] = {
        "eq": lambda: and_(col >= low, col < high),
        "ne": lambda: or_(col < low, col >= high),
        "gt": lambda: col > num,
        "sa": lambda: col > num,
        "lt": lambda: col < num,
        "eb": lambda: col < num,
        "ge": lambda: col >= num,
        "le": lambda: col <= num,
        "ap": lambda: and_(col >= num - abs(num) * 0.1, col <= num + abs(num) * 0.1),
    }
    return ops[prefix]()


def _quantity_pred(value_col, system_col, code_col, unit_col, value: str) -> ColumnElement:
    parts = value.split("|")
    pred = _number_pred(value_col, parts[0])
    system = parts[1] if len(parts) > 1 and parts[1] else None
    code = parts[2] if len(parts) > 2 and parts[2] else None
    if system:
        pred = and_(pred, system_col == system)
    if code:
        pred = and_(pred, code_col == code) if system else and_(pred, or_(code_col == code, unit_col == code))
    return pred


def _uri_pred(col, mod: str | None, value: str) -> ColumnElement:
    if mod == "below":
        return _prefix(col, value)
    if mod == "above":
        prefixes, cut = [], value
        while cut and "://" in cut:
            prefixes.append(cut)
            if "/" not in cut.split("://", 1)[1]:
                break
            cut = cut.rsplit("/", 1)[0]
        return col.in_(prefixes or [value])
    return col == value


def _prefix(col, text: str) -> ColumnElement:
    """Index-friendly prefix match (a range scan on both databases)."""
    if not text:
        return col.is_not(None)
    return and_(col >= text, col < text + TOP)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _rt(r: FromClause, res_type: str | None):
    return res_type if res_type is not None else r.c.res_type


__all__ = ["Conditions", "Unknown", "split_values"]


# -- derived parameters: which rows hold a parameter --------------------------------------------
def param_clause(
    table, registry: ParamTable, res_type: str | None, code: str, suffix: str = ""
) -> ColumnElement:
    """`table.param = code+suffix`, widened to the source rows when the parameter is derived.

    `res_type` None means rows of any type (system searches, `*` includes): each type where `code`
    is derived gets its own branch. `suffix` picks companion rows (":identifier", ":of-type").

    A target-type constraint needs the table's target_type column. `patient:identifier` rows are
    `subject:identifier` token rows, which have none, so that search matches a subject given by that
    identifier whatever type it names (a logical reference rarely names one anyway)."""
    if res_type is not None:
        return _expanded(table, sources(registry, res_type, code), suffix)
    branches = [table.c.param == code + suffix]
    for rtype, params in sorted(registry.by_type.items()):
        param = params.get(code)
        if param is not None and rtype in param.derived_from:
            expanded = _expanded(table, param.derived_from[rtype], suffix)
            branches.append(and_(table.c.res_type == rtype, expanded))
    return or_(*branches) if len(branches) > 1 else branches[0]


def _expanded(table, found: tuple[Source, ...], suffix: str) -> ColumnElement:
    """OR of the sources' rows: unconstrained ones in one IN list, typed ones with their target type."""
    typed = "target_type" in table.c
    plain = list(dict.fromkeys(s.code + suffix for s in found if s.target_type is None or not typed))
    clauses = []
    if plain:
        clauses.append(table.c.param == plain[0] if len(plain) == 1 else table.c.param.in_(plain))
    for s in found:
        if s.target_type is not None and typed:
            clauses.append(and_(table.c.param == s.code + suffix, table.c.target_type == s.target_type))
    return or_(*clauses) if len(clauses) > 1 else clauses[0]

"""Search statements compiled once per query *shape*, run with driver SQL (issue 20).

Building a search's SQLAlchemy statement, generating its cache key and compiling it cost more server
CPU than the database work of an identifier or patient-scoped search. The statement of a search
depends on its values only through bound parameters when every criterion is a plain token or local
reference match, so the statement is built ONCE per shape (type, parameter names, modifiers, value
forms, _count, _sort, paging direction, _total) with unique sentinel strings or numbers in place of the
values, compiled for the dialect, and every bound parameter that carries a sentinel becomes a slot the
real values fill at execution. The building code is the general path's own (`SqlSearch._statements`),
so both paths run the same SQL. A shape whose built statement does not carry every sentinel as a
bound value (a value that was transformed, or dropped, e.g. a reference whose type contradicts its
type modifier) is remembered as not templatable and always takes the general path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from fhir_server.search.query import Filter, SearchRequest
from fhir_server.search.registry import Registry
from fhir_server.search.values import parse_reference
from fhir_server.storage.sql.conditions import TOP
from fhir_server.text import fold

MAX_SHAPES = 512
_SORTABLE = ("_id", "_lastUpdated")
# Far outside any rid or microsecond timestamp; distinct per slot.
_INT_BASE = -(2**62)


def _sentinel_str(i: int) -> str:
    return f"\x1f{i}\x1f"


# String values are folded by the building code, which would strip the control characters above: their
# sentinel is plain lower-case ASCII that folding leaves as it is.
_FOLDED_HEAD, _FOLDED_TAIL = "zqlt", "slotqz"
# The building code binds a string prefix twice: the folded value and the value + this (its upper bound).
_TOP = TOP


def _sentinel_folded(i: int) -> str:
    return f"{_FOLDED_HEAD}{i}{_FOLDED_TAIL}"


@dataclass(frozen=True)
class Template:
    """One compiled statement: driver SQL, constant parameters and the slots the values fill."""

    sql: str
    order: tuple[str, ...] | None  # positional drivers (sqlite3): names in placeholder order
    consts: dict[str, Any]
    slots: tuple[tuple[str, int, str], ...]  # (bind name, index into the request's values, suffix)
    processors: dict[str, Callable[[Any], Any]]

    def params(self, values: list) -> tuple | dict[str, Any]:
        """Driver parameters of this statement for one request's values."""
        named = dict(self.consts)
        for name, i, suffix in self.slots:
            value = values[i] + suffix if suffix else values[i]
            proc = self.processors.get(name)
            named[name] = proc(value) if proc else value
        if self.order is not None:
            return tuple(named[k] for k in self.order)
        return named


@dataclass(frozen=True)
class Shape:
    """What a request's statements depend on besides its values, plus the sentinel request."""

    key: tuple
    sample: SearchRequest  # the request with sentinels for values
    token: tuple[list, int, str] | None  # decoded page token with sentinels
    values: list  # the real values, in sentinel order


def shape_of(
    registry: Registry,
    res_type: str | None,
    req: SearchRequest,
    base_url: str,
    token: tuple[list, int, str] | None,
) -> Shape | None:
    """The shape of a search whose criteria are plain token/reference/string-prefix matches, else None."""
    if res_type is None or req.ignored or req.issues:
        return None
    if any(code not in _SORTABLE for code, _ in req.sort):
        return None
    values: list = []
    parts: list = []
    filters: list[Filter] = []
    base = base_url.rstrip("/")
    for flt in req.filters:
        if flt.chain or flt.code.startswith("_"):
            return None
        param = registry.get(res_type, flt.code)
        if param is None:
            return None
        mod = flt.modifier
        sample_values: list[str] = []
        forms: list[str] = []
        as_token = param.type == "token" and mod in (None, "not")
        if as_token or param.type == "reference" and mod == "identifier":
            for v in flt.values:
                form, shown = _token_form(v, values)
                forms.append(form)
                sample_values.append(shown)
        elif param.type == "string" and mod is None:
            for v in flt.values:
                folded = fold(v)
                if not folded:  # an empty prefix matches any value: no bound value to fill
                    return None
                forms.append("p")
                i = len(values)
                values.append(folded)
                sample_values.append(_sentinel_folded(i))
        elif param.type == "reference" and (mod is None or mod[:1].isupper()):
            for v in flt.values:
                got = _reference_form(v, base, values)
                if got is None:
                    return None
                forms.append(got[0])
                sample_values.append(got[1])
        else:
            return None
        parts.append((flt.name, flt.code, mod, tuple(forms)))
        filters.append(replace(flt, values=sample_values))
    sample_token = None
    token_key: tuple = ()
    if token is not None:
        keys, last_rid, direction = token
        if len(keys) != len(req.sort):
            return None
        sample_keys = []
        for k in keys:
            if isinstance(k, bool) or not isinstance(k, (int, str)):
                return None
            sample_keys.append(slot(values, k))
        sample_token = (sample_keys, slot(values, last_rid), direction)
        token_key = (tuple(type(k).__name__ for k in keys), direction)
    key = (
        res_type,
        base,
        tuple(parts),
        tuple(req.sort),
        req.count,
        req.total,
        req.summary == "count",
        token is not None,
        token_key,
    )
    sample = replace(req, filters=filters, issues=[], ignored=[])
    return Shape(key, sample, sample_token, values)


def slot(values: list, real: Any) -> Any:
    """Append a real value; return the sentinel standing for it in the sample request."""
    i = len(values)
    values.append(real)
    return _INT_BASE + i if isinstance(real, int) else _sentinel_str(i)


def _token_form(v: str, values: list) -> tuple[str, str]:
    """Mirror of Conditions._token_pred: which parts of a token value are bound."""
    if "|" not in v:
        return "c", slot(values, v)
    system, _, code = v.partition("|")
    if not system:
        return "|c", "|" + slot(values, code)
    if not code:
        return "s|", slot(values, system) + "|"
    return "s|c", slot(values, system) + "|" + slot(values, code)


def _reference_form(v: str, base: str, values: list) -> tuple[str, str] | None:
    """Mirror of Conditions._reference_pred for local references; absolute URLs are not templated."""
    if base and v.startswith(base + "/"):
        v = v[len(base) + 1 :]
    if "://" in v or v.startswith("urn:"):
        return None
    if "/" in v:
        rtype, rid, _ = parse_reference(v)
        if rtype is None or rid is None:
            return None
        return "T/" + rtype, f"{rtype}/{slot(values, rid)}"
    return "id", slot(values, v)


def compile_template(stmt: ClauseElement, dialect: Dialect, n_values: int) -> Template | None:
    """Compile `stmt` (built from a sample request); None unless every sentinel is a bound value."""
    compiled: Any = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    slots: list[tuple[str, int, str]] = []
    consts: dict[str, Any] = {}
    found: set[int] = set()
    for name, value in params.items():
        suffix = ""
        i = sentinel_index(value, n_values)
        if i is None and isinstance(value, str) and value.endswith(_TOP):
            suffix = _TOP
            i = sentinel_index(value[: -len(_TOP)], n_values)
        if i is None:
            consts[name] = value
        else:
            slots.append((name, i, suffix))
            found.add(i)
    if len(found) != n_values:
        return None
    processors = {k: p for k, p in (compiled._bind_processors or {}).items() if p is not None}
    for name, proc in processors.items():
        if name in consts:
            consts[name] = proc(consts[name])
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    return Template(compiled.string, order, consts, tuple(slots), processors)


def sentinel_index(value: Any, n: int) -> int | None:
    """The index of the value a sentinel stands for (None: not a sentinel of these n values)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and _INT_BASE <= value < _INT_BASE + n:
        return value - _INT_BASE
    if isinstance(value, str) and len(value) >= 3 and value[0] == value[-1] == "\x1f":
        inner = value[1:-1]
        if inner.isdigit() and int(inner) < n:
            return int(inner)
    if isinstance(value, str) and value.startswith(_FOLDED_HEAD) and value.endswith(_FOLDED_TAIL):
        inner = value[len(_FOLDED_HEAD) : -len(_FOLDED_TAIL)]
        if inner.isdigit() and int(inner) < n:
            return int(inner)
    return None


class TemplateCache:
    """Compiled statements per shape (bounded LRU); cleared when the search parameters change."""

    def __init__(self, size: int = MAX_SHAPES) -> None:
        self.size = size
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        # Part of every key: a shape compiled while the parameters changed is never found again.
        self.generation = 0

    def get(self, key: tuple) -> Any:
        """The entry of a shape (a value or False for 'not templatable'), or None when absent."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple, entry: Any) -> None:
        """Remember a shape's compiled statements (or False)."""
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def compiled_shapes(self) -> int:
        """How many shapes are held compiled (not counting those remembered as not templatable)."""
        with self._lock:
            return sum(1 for entry in self._entries.values() if entry is not False)

    def clear(self) -> None:
        """Forget every shape (the registry changed)."""
        with self._lock:
            self.generation += 1
            self._entries.clear()

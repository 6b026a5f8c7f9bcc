"""Parse FHIR search request parameters into filters and result controls (no SQL here)."""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field

import orjson

from fhir_server.errors import FhirError
from fhir_server.i18n import msg

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
RESULT_PARAMS = {
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
    "_total",
    "_format",
    "_pretty",
    "_page_token",
    "_type",
    "_contained",
    "_containedType",
    "_offset",
}
SUMMARY_MODES = {"true", "false", "text", "data", "count"}
TOTAL_MODES = {"none", "estimate", "accurate"}


@dataclass
class Filter:
    """One search criterion: `name[:modifier][.chain]=v1,v2` (values are OR-ed)."""

    name: str
    code: str
    modifier: str | None
    chain: str | None
    values: list[str]


@dataclass
class Include:
    """An _include or _revinclude: source type, reference param (or "*"), optional target type."""

    source: str
    param: str
    target: str | None
    iterate: bool
    reverse: bool


@dataclass
class SearchRequest:
    """A parsed search: filters (AND-ed) plus result controls."""

    filters: list[Filter] = field(default_factory=list)
    count: int | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (code, descending)
    includes: list[Include] = field(default_factory=list)
    summary: str | None = None
    elements: list[str] | None = None
    total: str | None = None
    page_token: str | None = None
    types: list[str] | None = None
    issues: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # parameter names left out of the search (lenient)


def split_values(raw: str) -> list[str]:
    """Split a parameter value on commas that are not escaped with a backslash."""
    parts, buf, i = [], [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw) and raw[i + 1] in ",$|\\":
            buf.append(raw[i + 1])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return [p for p in parts if p != ""]


def parse_filter(name: str, value: str) -> Filter:
    """Split `code:modifier.chain` (or a `_has:...` name) into a Filter."""
    if name.startswith("_has:"):
        return Filter(name, "_has", None, name[5:], [value])
    head, _, chain = name.partition(".")
    code, _, modifier = head.partition(":")
    return Filter(name, code, modifier or None, chain or None, split_values(value))


def _parse_include(value: str, reverse: bool, iterate: bool) -> Include:
    parts = value.split(":")
    if value == "*":
        return Include("*", "*", None, iterate, reverse)
    if len(parts) < 2:
        raise FhirError.bad_request(
            f"invalid {'_revinclude' if reverse else '_include'} value {value!r}",
            expression="_revinclude" if reverse else "_include",
        )
    return Include(parts[0], parts[1], parts[2] if len(parts) > 2 else None, iterate, reverse)


@dataclass(frozen=True)
class Limits:
    """Bounds on the work one search may ask for (LIENTHONG_MAX_SORT_KEYS, _SEARCH_JOINS, _CHAIN_DEPTH)."""

    sort_keys: int = 8
    joins: int = 8  # chained and _has parameters
    chain_depth: int = 3  # links of one chain, levels of one nested _has


def _too_costly(text, expression: str) -> FhirError:
    return FhirError.bad_request(text, code="too-costly", expression=expression)


def _check_limits(req: SearchRequest, limits: Limits) -> None:
    """400 too-costly past a bound: each sort key, join or chain link is one more SQL join or subquery."""
    if len(req.sort) > limits.sort_keys:
        raise _too_costly(
            msg(
                "_sort has {count} keys; at most {limit} are allowed",
                count=len(req.sort),
                limit=limits.sort_keys,
            ),
            "_sort",
        )
    joins = [f for f in req.filters if f.chain]
    if len(joins) > limits.joins:
        raise _too_costly(
            msg(
                "{count} chained or _has parameters; at most {limit} are allowed",
                count=len(joins),
                limit=limits.joins,
            ),
            joins[limits.joins].name,
        )
    for f in joins:
        depth = f.name.count("_has:") if f.code == "_has" else (f.chain or "").count(".") + 1
        if depth > limits.chain_depth:
            raise _too_costly(
                msg(
                    "{name!r} chains {depth} levels; at most {limit} are allowed",
                    name=f.name,
                    depth=depth,
                    limit=limits.chain_depth,
                ),
                f.name,
            )


def parse_request(
    params: list[tuple[str, str]], max_count: int = 1000, limits: Limits | None = None
) -> SearchRequest:
    """Group raw (name, value) pairs into a SearchRequest; filter names are validated later."""
    req = _parse(params, max_count)
    _check_limits(req, limits or Limits())
    return req


def _parse(params: list[tuple[str, str]], max_count: int) -> SearchRequest:
    req = SearchRequest()
    for name, value in params:
        if "\x00" in name or "\x00" in value:
            # No database column can hold NUL (PostgreSQL refuses it): a 400 naming the parameter.
            raise FhirError.bad_request(
                msg("Search parameter {name!r} contains a NUL character", name=name.replace("\x00", "")),
                code="value",
                expression=name.replace("\x00", ""),
            )
        base = name.split(":", 1)[0]
        if base not in RESULT_PARAMS:
            if value == "" and not name.startswith("_has"):
                continue
            req.filters.append(parse_filter(name, value))
            continue
        if base == "_count":
            try:
                req.count = max(0, min(int(value), max_count))
            except ValueError:
                raise FhirError.bad_request(f"_count must be an integer, got {value!r}", expression="_count")
        elif base == "_sort":
            for key in split_values(value):
                req.sort.append((key[1:], True) if key.startswith("-") else (key, False))
        elif base in ("_include", "_revinclude"):
            iterate = name.endswith(":iterate") or name.endswith(":recurse")
            req.includes.append(_parse_include(value, base == "_revinclude", iterate))
        elif base == "_summary":
            if value not in SUMMARY_MODES:
                raise FhirError.bad_request(
                    f"_summary must be one of {sorted(SUMMARY_MODES)}", expression="_summary"
                )
            req.summary = None if value == "false" else value
        elif base == "_elements":
            req.elements = [e.strip() for e in value.split(",") if e.strip()]
        elif base == "_total":
            if value not in TOTAL_MODES:
                raise FhirError.bad_request(
                    f"_total must be one of {sorted(TOTAL_MODES)}", expression="_total"
                )
            req.total = value
        elif base == "_page_token":
            req.page_token = value
        elif base == "_type":
            req.types = [t for t in split_values(value)]
        elif base in ("_contained", "_containedType", "_offset"):
            req.issues.append(f"parameter {name!r} is not supported and was ignored")
            req.ignored.append(name)
    return req


# -- value parsing -----------------------------------------------------------------------------------
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def split_prefix(value: str) -> tuple[str, str]:
    """('ge', '2020') for 'ge2020'; 'eq' when no prefix."""
    if len(value) > 2 and value[:2] in PREFIXES and (value[2].isdigit() or value[2] in "-+."):
        return value[:2], value[2:]
    return "eq", value


def number_bounds(text: str) -> tuple[float, float, float]:
    """(value, low, high) where [low, high) is the implicit precision range of a search number."""
    if not _NUMBER.match(text):
        raise FhirError.bad_request(f"invalid number {text!r}")
    value = float(text)
    mantissa, _, exp = text.lower().partition("e")
    decimals = len(mantissa.split(".", 1)[1]) if "." in mantissa else 0
    try:
        half = 0.5 * 10 ** (-decimals + (int(exp) if exp else 0))
    except OverflowError:
        half = math.inf
    if not (math.isfinite(value) and math.isfinite(half)):
        # 1e400 parses to infinity: no stored number can be compared with it (double precision).
        raise FhirError.bad_request(
            msg("Number {value!r} is out of range (double precision)", value=text), code="value"
        )
    return value, value - half, value + half


# -- page tokens -------------------------------------------------------------------------------------
def encode_token(keys: list, rid: int, direction: str) -> str:
    """Opaque keyset page token: the sort key values and rid of the boundary row."""
    raw = orjson.dumps({"k": keys, "r": rid, "d": direction})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[list, int, str]:
    """Inverse of encode_token; 400 on a tampered or foreign token."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return list(data["k"]), int(data["r"]), str(data["d"])
    except Exception:
        raise FhirError.bad_request("invalid _page_token", expression="_page_token")

"""Rule engine of the QĐ130 checker: each rules.yaml entry runs as one small check kind over one HOSO."""

from __future__ import annotations

import ast
import operator
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cached_property, lru_cache

from fhir_server.i18n import Msg
from mappings import load_yaml

from .check_lists import CodeList, CodeLists, Unavailable
from .check_report import Finding, RuleStatus
from .envelope import HosoData, tables_config
from .validate import check_bhyt, check_cccd
from .values import to_birth, to_date, to_date_or_datetime, to_datetime, to_number

CENT = Decimal("0.01")
FILE_KINDS = frozenset({"decode", "hoso_count"})  # run by check.py on the envelope, not per HOSO


@dataclass(frozen=True)
class Rule:
    """One rule of rules.yaml: identity, severity, messages, legal reference and its parameters."""

    id: str
    kind: str
    severity: str
    msg_vi: str
    msg_en: str
    ref: str
    spec: Mapping = field(hash=False, compare=False)

    def tables(self, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Tables the rule applies to (`tables` as a list, or the keys of a per-table mapping)."""
        t = self.spec.get("tables")
        if isinstance(t, Mapping):
            return tuple(t)
        return tuple(t) if t else default


@dataclass(frozen=True)
class RuleSet:
    """Compiled rules plus the field catalogue they share."""

    rules: tuple[Rule, ...]
    lists_config: Mapping
    legacy_skip: Unavailable
    sizes: Mapping[str, Mapping[str, int | None]]
    legacy_fields: Mapping[str, frozenset[str]]

    def by_id(self, rule_id: str) -> Rule:
        """Look a rule up by id (KeyError if unknown)."""
        return self.index[rule_id]

    @cached_property
    def index(self) -> Mapping[str, Rule]:
        """Rules by id (built on first use)."""
        return {r.id: r for r in self.rules}


@lru_cache(maxsize=1)
def load_rules() -> RuleSet:
    """Read mappings/qd130/rules.yaml and fields.yaml once; validate kinds and compile formulas."""
    doc = load_yaml("qd130/rules.yaml")
    fields = load_yaml("qd130/fields.yaml")
    aliases = tables_config().get("legacy_4210_aliases", {})
    legacy = {
        t: frozenset(names) | frozenset(aliases.get(t, {}).values())
        for t, names in fields.get("legacy_4210", {}).items()
    }
    rules = []
    for spec in doc["rules"]:
        kind = spec["kind"]
        if kind not in KINDS and kind not in FILE_KINDS:
            raise ValueError(f"rule {spec['id']}: unknown kind {kind!r}")
        if kind == "formula":
            exprs = spec["expr"] if isinstance(spec["expr"], list) else [spec["expr"]]
            spec = {**spec, "_compiled": tuple(_compile(e) for e in exprs)}
        if "regex" in spec:
            spec = {**spec, "_regex": re.compile(spec["regex"])}
        if "only" in spec:
            spec = {**spec, "_only": re.compile(spec["only"])}
        if kind == "in_list":
            inline = spec.get("inline") or {}
            used = {n for f in spec["fields"].values() for n in f.values() if n not in inline}
            spec = {**spec, "_lists": tuple(sorted(used))}
        text = spec["message"]
        rules.append(
            Rule(spec["id"], kind, spec["severity"], text["vi"], text["en"], spec.get("ref", ""), spec)
        )
    skip = doc["msg"]["legacy_skip"]
    return RuleSet(tuple(rules), doc["lists"], Unavailable(skip["vi"], skip["en"]), fields["tables"], legacy)


# --- values -------------------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _dec(value: str | None) -> Decimal | None:
    """A money/quantity value as Decimal, or None when absent or not a number (cached: values repeat)."""
    if value is None:
        return None
    try:
        to_number(value)
        return Decimal(value.strip())
    except (ValueError, InvalidOperation):
        return None


def _num(d: Decimal) -> str:
    """Decimal for messages: plain notation, no trailing zeros."""
    s = format(d.quantize(CENT, ROUND_HALF_UP), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


@lru_cache(maxsize=65536)
def _moment(value: str | None) -> str | None:
    """A yyyyMMdd or yyyyMMddHHmm value that is a real date (comparable as text), else None (cached)."""
    if value is None:
        return None
    try:
        if len(value) == 12:
            to_datetime(value)
        elif len(value) == 8:
            to_date(value)
        else:
            return None
    except ValueError:
        return None
    return value


def _before(a: str, b: str) -> bool:
    """a < b for date(-time)s of possibly different precision (compared on the common prefix)."""
    n = min(len(a), len(b))
    return a[:n] < b[:n]


def _code_eq(value: str, code: str) -> bool:
    """Codes compare as text, and as numbers when both are digits ("03" = "3" for MA_LOAI_KCB)."""
    return value == code or (value.isdigit() and code.isdigit() and int(value) == int(code))


def _norm_text(value: str) -> str:
    """Free text for comparison: NFC, collapsed whitespace, case folded."""
    return " ".join(unicodedata.normalize("NFC", value).split()).casefold()


# --- formulas -----------------------------------------------------------------------------------------

_OPS: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _compile(expr: str) -> tuple[Callable[[Mapping[str, Decimal]], Decimal], frozenset[str]]:
    """Compile `A * B / 100`-style arithmetic over field names (nothing else is allowed)."""
    tree = ast.parse(expr, mode="eval").body
    names: set[str] = set()

    def build(node: ast.AST) -> Callable:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            op, left, right = _OPS[type(node.op)], build(node.left), build(node.right)
            return lambda env: op(left(env), right(env))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = build(node.operand)
            return lambda env: -inner(env)
        if isinstance(node, ast.Name):
            names.add(node.id)
            return lambda env, n=node.id: env[n]
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            const = Decimal(str(node.value))
            return lambda env: const
        raise ValueError(f"formula {expr!r}: only field names, numbers and + - * / are allowed")

    return build(tree), frozenset(names)


# --- per-HOSO context ---------------------------------------------------------------------------------


class HosoCtx:
    """One decoded HOSO being checked: its rows, XML1, code lists, and where findings go."""

    def __init__(
        self,
        file: str,
        data: HosoData,
        ruleset: RuleSet,
        lists: CodeLists,
        findings: list[Finding],
        broken: frozenset[str] = frozenset(),
    ) -> None:
        """Bind the HOSO; `broken` = tables whose content could not be decoded."""
        self.file = file
        self.data = data
        self.ruleset = ruleset
        self.lists = lists
        self.findings = findings
        self.broken = broken
        xml1 = data.tables.get("XML1") or [{}]
        self.xml1: dict = xml1[0]
        self.key = self.xml1.get("MA_LK") or ""
        self.legacy = data.legacy_4210
        out = _moment(self.xml1.get("NGAY_RA")) or _moment(self.xml1.get("NGAY_VAO"))
        self.episode_date = out[:8] if out else None
        self.skipped: Unavailable | None = None

    def rows(self, table: str) -> list[dict]:
        """Records of a table (empty when absent)."""
        return self.data.tables.get(table) or []

    def emit(self, rule: Rule, table: str, pos: int | None, row: Mapping | None, fld: str, **params) -> None:
        """Record a finding of `rule` at table/row/field with the message placeholders filled."""
        params.setdefault("field", fld)
        params.setdefault("table", table)
        vals = _Params({k: (_num(v) if isinstance(v, Decimal) else v) for k, v in params.items()})
        self.findings.append(
            Finding(
                file=self.file,
                ma_lk=self.key or (row or {}).get("MA_LK", ""),
                table=table,
                stt=str((row or {}).get("STT", "")),
                row=pos,
                field=fld,
                rule_id=rule.id,
                severity=rule.severity,
                message_vi=rule.msg_vi.format_map(_Params(vals, lang="vi")),
                message_en=rule.msg_en.format_map(_Params(vals, lang="en")),
                legal_ref=rule.ref,
            )
        )

    def skip(self, why: Unavailable) -> None:
        """The running rule cannot be applied to this HOSO (e.g. no list for its date)."""
        self.skipped = why

    def code_list(self, name: str) -> CodeList | Unavailable:
        """The named list in force on this episode's date."""
        return self.lists.get(name, self.episode_date)


class _Params(dict):
    """Message placeholders; {list}/{reason} may hold (vi, en) pairs or a Msg; unknown names render empty."""

    def __init__(self, data: Mapping, lang: str | None = None) -> None:
        super().__init__(data)
        self.lang = lang

    def __getitem__(self, key: str):
        value = super().__getitem__(key)
        if isinstance(value, tuple) and self.lang:
            return value[1] if self.lang == "en" else value[0]
        if isinstance(value, Msg):  # a reason shared with ingest (validate.check_bhyt), from the catalog
            return value.render(self.lang)
        return value

    def __missing__(self, key: str) -> str:
        return ""


def _cond(spec: Mapping | None, row: Mapping, ctx: HosoCtx) -> bool:
    """Evaluate a `when`/`where` condition on a row (or on XML1 with `table: XML1`); absent value = False."""
    if not spec:
        return True
    src = ctx.xml1 if spec.get("table") == "XML1" else row
    value = src.get(spec["field"])
    if "present" in spec:
        return (value is not None) == bool(spec["present"])
    if value is None:
        return False
    if "in" in spec:
        return any(_code_eq(value, str(c)) for c in spec["in"])
    if "not_in" in spec:
        return not any(_code_eq(value, str(c)) for c in spec["not_in"])
    if "number" in spec:
        d = _dec(value)
        return d is not None and d == Decimal(str(spec["number"]))
    raise ValueError(f"condition {spec!r}: needs present, in, not_in or number")


# --- check kinds --------------------------------------------------------------------------------------


def _required(rule: Rule, ctx: HosoCtx) -> None:
    """Listed fields must be non-empty (optionally only when a condition holds)."""
    when = rule.spec.get("when")
    for table in rule.tables():
        legacy = ctx.ruleset.legacy_fields.get(table) if ctx.legacy else None
        for pos, row in enumerate(ctx.rows(table), start=1):
            if not _cond(when, row, ctx):
                continue
            for f in rule.spec["fields"]:
                if legacy is not None and f not in legacy:
                    continue  # a QĐ 130 field the 4210 layout never had
                if f not in row:
                    ctx.emit(rule, table, pos, row, f)


def _pattern(rule: Rule, ctx: HosoCtx) -> None:
    """Each value (or each `split` item) must match the regex; optional `max_items`."""
    rx = rule.spec["_regex"]
    split = rule.spec.get("split")
    limit = rule.spec.get("max_items")
    for table in rule.tables():
        for pos, row in enumerate(ctx.rows(table), start=1):
            for f in rule.spec["fields"]:
                value = row.get(f)
                if value is None:
                    continue
                items = [i.strip() for i in value.split(split)] if split else [value]
                if limit and len(items) > limit:
                    ctx.emit(rule, table, pos, row, f, value=value, limit=limit)
                    continue
                for item in items:
                    if not rx.fullmatch(item):
                        ctx.emit(rule, table, pos, row, f, value=item, limit=limit or "")


def _known_fields(rule: Rule, ctx: HosoCtx) -> None:
    """Every element must be a field of its table (4210 names too in legacy records)."""
    for table, rows in ctx.data.tables.items():
        known = ctx.ruleset.sizes.get(table)
        if known is None:
            continue
        legacy = ctx.ruleset.legacy_fields.get(table, frozenset()) if ctx.legacy else frozenset()
        for pos, row in enumerate(rows, start=1):
            for f in row:
                if f not in known and f not in legacy:
                    ctx.emit(rule, table, pos, row, f)


def _max_length(rule: Rule, ctx: HosoCtx) -> None:
    """Values must not be longer than the size the standard gives the field."""
    for table, rows in ctx.data.tables.items():
        sizes = ctx.ruleset.sizes.get(table) or {}
        for pos, row in enumerate(rows, start=1):
            for f, value in row.items():
                limit = sizes.get(f)
                if limit and len(value) > limit:
                    ctx.emit(rule, table, pos, row, f, value=value[:20], count=len(value), limit=limit)


_DATE_CHECKS: dict[str, tuple[Callable[[str], object], str]] = {
    "datetime12": (to_datetime, "yyyyMMddHHmm"),
    "date8": (to_date, "yyyyMMdd"),
    "date_or_datetime": (to_date_or_datetime, "yyyyMMdd / yyyyMMddHHmm"),
    "birth": (to_birth, "yyyyMMddHHmm"),
}


def _date_format(rule: Rule, ctx: HosoCtx) -> None:
    """Date/time fields must be real dates in their format (`split` for ;-lists)."""
    split = rule.spec.get("split")
    for table, fmts in rule.spec["formats"].items():
        for pos, row in enumerate(ctx.rows(table), start=1):
            for f, kind in fmts.items():
                value = row.get(f)
                if value is None:
                    continue
                parse, label = _DATE_CHECKS[kind]
                for item in value.split(split) if split else [value]:
                    try:
                        parse(item.strip())
                    except ValueError:
                        ctx.emit(rule, table, pos, row, f, value=item, expected=label)


def _number(rule: Rule, ctx: HosoCtx) -> None:
    """Numeric fields: a number (dot decimal separator) within [min, max]."""
    lo, hi = rule.spec.get("min"), rule.spec.get("max")
    for table, fields in rule.spec["fields"].items():
        for pos, row in enumerate(ctx.rows(table), start=1):
            for f in fields:
                value = row.get(f)
                if value is None:
                    continue
                d = _dec(value)
                if d is None or (lo is not None and d < lo) or (hi is not None and d > hi):
                    ctx.emit(rule, table, pos, row, f, value=value, min=lo, max=hi)


_PERCENT = ("MUC_HUONG", "TYLE_TT_BH", "TYLE_TT_DV")


def _formula(rule: Rule, ctx: HosoCtx) -> None:
    """target = expr (any of several) after rounding to 2 decimals, within `tolerance`."""
    target = rule.spec["target"]
    tol = Decimal(str(rule.spec.get("tolerance", "0.01")))
    when = rule.spec.get("when")
    for table in rule.tables():
        for pos, row in enumerate(ctx.rows(table), start=1):
            if not _cond(when, row, ctx):
                continue
            actual = _dec(row.get(target))
            if actual is None:
                continue  # absent or not a number: reported by the required/number rules
            expected = []
            for fn, names in rule.spec["_compiled"]:
                env = {n: _dec(row.get(n)) for n in names}
                if any(v is None for v in env.values()):
                    break
                # a percentage out of 0–100 is reported by QD130-ALL-009, not as a wrong amount
                if any(n in _PERCENT and not 0 <= env[n] <= 100 for n in names):
                    break
                expected.append(fn(env).quantize(CENT, ROUND_HALF_UP))
            else:
                if expected and all(abs(actual - e) > tol for e in expected):
                    ctx.emit(rule, table, pos, row, target, value=row[target], expected=expected[0])


def _sum_equals(rule: Rule, ctx: HosoCtx) -> None:
    """An XML1 total equals the sum of detail-row fields (optionally filtered), within `tolerance`."""
    target = rule.spec["target"]
    actual = _dec(ctx.xml1.get(target))
    if actual is None:
        return
    parts = rule.spec["sum"]
    if any(p["table"] in ctx.broken for p in parts):
        return  # a detail table could not be decoded: the sum would be meaningless
    total = Decimal(0)
    for p in parts:
        for row in ctx.rows(p["table"]):
            if not _cond(p.get("where"), row, ctx):
                continue
            d = _dec(row.get(p["field"]))
            if d is None:
                return  # a detail amount is missing or malformed: reported on that row
            total += d
    if abs(actual - total) > Decimal(str(rule.spec.get("tolerance", 1))):
        ctx.emit(rule, "XML1", 1, ctx.xml1, target, value=ctx.xml1[target], expected=total)


def _operand(spec: str | Mapping, row: Mapping, ctx: HosoCtx) -> str | None:
    """A date operand: a field of the row, of XML1, or the earliest joined XML3-style value."""
    if isinstance(spec, str):
        return _moment(row.get(spec))
    if spec["table"] == "XML1":
        return _moment(ctx.xml1.get(spec["field"]))
    join = spec["join"]
    key = row.get(join)
    found = [_moment(r.get(spec["field"])) for r in ctx.rows(spec["table"]) if key and r.get(join) == key]
    found = [v for v in found if v]
    return min(found) if found else None


def _date_order(rule: Rule, ctx: HosoCtx) -> None:
    """left <= right (both real dates); reported on `report` with the two values."""
    left, right, report = rule.spec["left"], rule.spec["right"], rule.spec["report"]
    for table in rule.tables():
        for pos, row in enumerate(ctx.rows(table), start=1):
            a, b = _operand(left, row, ctx), _operand(right, row, ctx)
            if a and b and _before(b, a):
                ctx.emit(rule, table, pos, row, report, value=row.get(report, b), other=a)


def _date_within(rule: Rule, ctx: HosoCtx) -> None:
    """Times must fall within XML1 [lower, upper]; skipped when those bounds are themselves wrong."""
    lo = _moment(ctx.xml1.get(rule.spec["lower"]))
    hi = _moment(ctx.xml1.get(rule.spec["upper"]))
    if not lo or not hi or _before(hi, lo):
        return  # reported by the NGAY_VAO/NGAY_RA rules
    for table, fields in rule.spec["fields"].items():
        for pos, row in enumerate(ctx.rows(table), start=1):
            for f in fields:
                v = _moment(row.get(f))
                if v and (_before(v, lo) or _before(hi, v)):
                    ctx.emit(rule, table, pos, row, f, value=v, expected=f"{lo} – {hi}")


def _in_list(rule: Rule, ctx: HosoCtx) -> None:
    """Codes (or `split` items) must be in the list in force on the episode date."""
    inline = rule.spec.get("inline") or {}
    split = rule.spec.get("split")
    pad = rule.spec.get("legacy_pad") if ctx.legacy else None
    only = rule.spec.get("_only")
    for table, fields in rule.spec["fields"].items():
        for pos, row in enumerate(ctx.rows(table), start=1):
            for f, list_name in fields.items():
                value = row.get(f)
                if value is None:
                    continue
                if list_name in inline:
                    cl: CodeList | Unavailable = CodeList(
                        list_name, frozenset(inline[list_name]).__contains__, list_name, list_name
                    )
                else:
                    cl = ctx.code_list(list_name)
                if isinstance(cl, Unavailable):
                    ctx.skip(cl)
                    continue
                for item in (i.strip() for i in (value.split(split) if split else [value])):
                    if only and not only.fullmatch(item):
                        continue
                    code = item.zfill(pad) if pad and item.isdigit() else item
                    if not cl.contains(code):
                        ctx.emit(rule, table, pos, row, f, value=item, list=(cl.title_vi, cl.title_en))


def _cross_table_key(rule: Rule, ctx: HosoCtx) -> None:
    """Every row's key field equals the XML1 value."""
    fld = rule.spec["field"]
    if not ctx.key:
        return
    for table in rule.tables():
        for pos, row in enumerate(ctx.rows(table), start=1):
            value = row.get(fld)
            if value is not None and value != ctx.key:
                ctx.emit(rule, table, pos, row, fld, value=value, expected=ctx.key)


def _unique(rule: Rule, ctx: HosoCtx) -> None:
    """A field's values must not repeat within a table (reported at the repetition)."""
    fld = rule.spec["field"]
    for table in rule.tables():
        seen: set[str] = set()
        for pos, row in enumerate(ctx.rows(table), start=1):
            value = row.get(fld)
            if value is None:
                continue
            if value in seen:
                ctx.emit(rule, table, pos, row, fld, value=value)
            seen.add(value)


def _any_present(rule: Rule, ctx: HosoCtx) -> None:
    """At least one of the fields is present (reported on the first one)."""
    fields = rule.spec["fields"]
    for table in rule.tables():
        for pos, row in enumerate(ctx.rows(table), start=1):
            if not any(f in row for f in fields):
                ctx.emit(rule, table, pos, row, fields[0])


def _all_or_none(rule: Rule, ctx: HosoCtx) -> None:
    """If any of the fields is present, all must be (each missing one reported)."""
    fields = rule.spec["fields"]
    for table in rule.tables():
        for pos, row in enumerate(ctx.rows(table), start=1):
            if any(f in row for f in fields):
                for f in fields:
                    if f not in row:
                        ctx.emit(rule, table, pos, row, f)


def _parallel_lists(rule: Rule, ctx: HosoCtx) -> None:
    """;-lists parallel to `base` hold as many items as it does."""
    base = rule.spec["base"]
    for table in rule.tables():
        for pos, row in enumerate(ctx.rows(table), start=1):
            if base not in row:
                continue
            n = len(row[base].split(";"))
            for f in rule.spec["fields"]:
                if f in row and len(row[f].split(";")) != n:
                    ctx.emit(rule, table, pos, row, f, count=len(row[f].split(";")), expected=n)


def _bhyt_card(rule: Rule, ctx: HosoCtx) -> None:
    """Each ;-separated insurance card code has a valid structure (validate.check_bhyt)."""
    fld = rule.spec["field"]
    for table in rule.tables():
        for pos, row in enumerate(ctx.rows(table), start=1):
            value = row.get(fld)
            if value is None:
                continue
            for i, card in enumerate(value.split(";"), start=1):
                why = check_bhyt(card.strip())
                if why:
                    ctx.emit(rule, table, pos, row, fld, count=i, reason=why)


def _cccd(rule: Rule, ctx: HosoCtx) -> None:
    """A 12-digit CCCD agrees with its own structure and NGAY_SINH/GIOI_TINH (validate.check_cccd)."""
    fld = rule.spec["field"]
    reasons = rule.spec["reasons"]
    genders = load_yaml("qd130/codes.yaml")["maps"]["gioi_tinh"]["codes"]
    for table in rule.tables():
        for pos, row in enumerate(ctx.rows(table), start=1):
            value = row.get(fld)
            if value is None or len(value) != 12 or not value.isdigit():
                continue  # other shapes are judged by the format rule
            birth = row.get("NGAY_SINH", "")
            year = int(birth[:4]) if birth[:4].isdigit() else None
            gender = genders.get(row.get("GIOI_TINH", ""), {}).get("target")
            # check_cccd answers one question at a time: structure, then birth year, then sex
            if check_cccd(value):
                key = "province"
            elif check_cccd(value, year):
                key = "birth_year"
            elif check_cccd(value, year, gender):
                key = "sex"
            else:
                continue
            ctx.emit(rule, table, pos, row, fld, reason=(reasons[key]["vi"], reasons[key]["en"]))


def _treatment_days(rule: Rule, ctx: HosoCtx) -> None:
    """SO_NGAY_DTRI: 0 for some visit types, calendar days NGAY_RA − NGAY_VAO + 1 for stays."""
    fld = rule.spec["field"]
    for table in rule.tables():
        for pos, row in enumerate(ctx.rows(table), start=1):
            value, kcb = row.get(fld), row.get("MA_LOAI_KCB")
            if value is None or kcb is None or not value.isdigit():
                continue
            kcb = kcb.zfill(2) if kcb.isdigit() else kcb
            if kcb in rule.spec["zero_types"]:
                expected = 0
            elif kcb in rule.spec["span_types"]:
                vao, ra = _moment(row.get("NGAY_VAO")), _moment(row.get("NGAY_RA"))
                if not vao or not ra or _before(ra, vao):
                    continue
                days = date(int(ra[:4]), int(ra[4:6]), int(ra[6:8])) - date(
                    int(vao[:4]), int(vao[4:6]), int(vao[6:8])
                )
                expected = days.days + 1
            else:
                continue  # other visit types follow facility rules the digest does not state
            if int(value) != expected:
                ctx.emit(rule, table, pos, row, fld, value=value, other=kcb, expected=expected)


def _echo_equals(rule: Rule, ctx: HosoCtx) -> None:
    """Fields copied from XML1 into papers must, when present, equal the XML1 value."""
    text = set(rule.spec.get("text_fields") or ())
    for table, mapping in rule.spec["tables"].items():
        for pos, row in enumerate(ctx.rows(table), start=1):
            for f, x1f in mapping.items():
                value = row.get(f)
                if value is None:
                    continue
                ref = ctx.xml1.get(x1f)
                same = ref is not None and (
                    _norm_text(value) == _norm_text(ref) if f in text else value == ref
                )
                if not same:
                    ctx.emit(rule, table, pos, row, f, other=x1f)


def _table_presence(rule: Rule, ctx: HosoCtx) -> None:
    """A table is only sent when an XML1 condition holds (only_when), or is expected then (expected_when)."""
    table, when = rule.spec["table"], rule.spec["when"]
    value = ctx.xml1.get(when["field"])
    if value is None:
        return  # the XML1 field itself is missing: reported by the required rule
    present = bool(ctx.data.tables.get(table))
    holds = _cond(when, ctx.xml1, ctx)
    if rule.spec["mode"] == "only_when" and present and not holds:
        ctx.emit(rule, table, None, None, "", value=value)
    elif rule.spec["mode"] == "expected_when" and holds and not present and table not in ctx.broken:
        ctx.emit(rule, "XML1", 1, ctx.xml1, when["field"], value=value)


def _legacy_layout(rule: Rule, ctx: HosoCtx) -> None:
    """QĐ 4210 field names were found (and mapped): tell the hospital once per record."""
    if ctx.legacy:
        ctx.emit(rule, "XML1", 1, ctx.xml1, "")


KINDS: dict[str, Callable[[Rule, HosoCtx], None]] = {
    "required": _required,
    "pattern": _pattern,
    "known_fields": _known_fields,
    "max_length": _max_length,
    "date_format": _date_format,
    "number": _number,
    "formula": _formula,
    "sum_equals": _sum_equals,
    "date_order": _date_order,
    "date_within": _date_within,
    "in_list": _in_list,
    "cross_table_key": _cross_table_key,
    "unique": _unique,
    "any_present": _any_present,
    "all_or_none": _all_or_none,
    "parallel_lists": _parallel_lists,
    "bhyt_card": _bhyt_card,
    "cccd": _cccd,
    "treatment_days": _treatment_days,
    "echo_equals": _echo_equals,
    "table_presence": _table_presence,
    "legacy_layout": _legacy_layout,
}


def rule_lists(rule: Rule) -> tuple[str, ...]:
    """Names of the shared code lists an in_list rule uses (inline lists excluded)."""
    return rule.spec.get("_lists", ())


def run_hoso(ctx: HosoCtx, statuses: dict[str, RuleStatus]) -> None:
    """Apply every per-HOSO rule to one HOSO, counting per rule whether it could be applied."""
    for rule in ctx.ruleset.rules:
        if rule.kind in FILE_KINDS:
            continue
        ctx.skipped = None
        names = rule_lists(rule)
        missing = [ctx.lists.static_reason(n) for n in names]
        if names and all(missing):
            ctx.skipped = missing[0]  # no list at all: say so even when the record has no value
        elif ctx.legacy and rule.spec.get("legacy") is False:
            ctx.skipped = ctx.ruleset.legacy_skip
        else:
            KINDS[rule.kind](rule, ctx)
        st = statuses[rule.id]
        if ctx.skipped is None:
            st.checked += 1
        else:
            st.skipped += 1
            st.reason_vi, st.reason_en = ctx.skipped.reason_vi, ctx.skipped.reason_en

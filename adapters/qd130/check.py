"""Agency-style validation of QĐ130 files before sending (engine of `lienthong check` / `$check`).

Rules are data (mappings/qd130/rules.yaml, engine in check_rules.py); the file is read with the same
safe parser and value checks as ingest, but without vendor rewriting, because the agency sees the file
as it is. Entry points: check_bytes, check_paths, check_hoso (for ingest warnings); renderings and
exit_code live in check_report.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path

from adapters.base import RecordError
from fhir_server.i18n import Texts

from .check_lists import CodeLists, default_lists
from .check_report import CheckReport, Finding, RuleStatus
from .check_rules import HosoCtx, Rule, RuleSet, load_rules, run_hoso
from .envelope import HosoData, decode_hoso, maybe_unwrap_base64, read_envelope
from .vendors import VendorProfile, get_vendor
from .xmlsafe import BadXml, UnsafeXml

_TABLE = re.compile(r"^XML\d{1,2}$")
# decode_hoso's (English) reasons → FILE-001 categories, by prefix
_DECODE_REASONS = (
    ("missing LOAIHOSO", "loaihoso"),
    ("unknown LOAIHOSO", "loaihoso"),
    ("empty NOIDUNGFILE", "empty"),
    ("bad base64", "bad_base64"),
    ("refused", "unsafe"),
    ("decoded content is", "inner_not_xml"),
    ("LOAIHOSO", "wrong_table"),
)


def _standard() -> VendorProfile:
    """The published standard: no placeholder rewriting, no local code maps."""
    return get_vendor("standard")


def _statuses(ruleset: RuleSet) -> dict[str, RuleStatus]:
    """A fresh status per rule, in rule order."""
    return {r.id: RuleStatus(r.id, r.severity) for r in ruleset.rules}


def _file_finding(
    rule: Rule, file: str, category: str, detail: str = "", table: str = "", fld: str = "", ma_lk: str = ""
) -> Finding:
    """A FILE-001 finding: the Vietnamese message names the category, the English one adds the detail."""
    reasons = rule.spec["reasons"]
    r = reasons.get(category) or reasons["other"]
    en = f"{r['en']} ({detail})" if detail else r["en"]
    return Finding(
        file=file,
        ma_lk=ma_lk,
        table=table,
        stt="",
        row=None,
        field=fld,
        rule_id=rule.id,
        severity=rule.severity,
        message_vi=rule.msg_vi.format(reason=r["vi"]),
        message_en=rule.msg_en.format(reason=en),
        legal_ref=rule.ref,
    )


def _decode_findings(rule: Rule, file: str, data: HosoData) -> tuple[list[Finding], frozenset[str]]:
    """Findings for the FILEHOSO entries that could not be decoded, and the tables they broke."""
    out, broken = [], set()
    for err in data.errors:
        category = next((c for prefix, c in _DECODE_REASONS if err.reason.startswith(prefix)), "other")
        parts = err.location.split("/")
        table = parts[0] if _TABLE.match(parts[0]) else ""
        if table:
            broken.add(table)
        out.append(_file_finding(rule, file, category, err.reason, table, parts[-1], data.ma_lk or ""))
    return out, frozenset(broken)


def check_hoso(
    data: HosoData,
    file: str = "",
    lists: CodeLists | None = None,
    statuses: dict | None = None,
    bare_table: str | None = None,
) -> list[Finding]:
    """All findings for one decoded HOSO (rule statuses are counted into `statuses` when given).

    `bare_table`: the file held only this table (no envelope), so the other tables are unknown rather
    than absent and cross-table sums are not judged.
    """
    ruleset = load_rules()
    statuses = statuses if statuses is not None else _statuses(ruleset)
    decode_rule = ruleset.by_id("QD130-FILE-001")
    findings, broken = _decode_findings(decode_rule, file, data)
    if bare_table:
        broken |= {t for t in ruleset.sizes if t != bare_table}
    if not data.tables.get("XML1"):
        findings.append(_file_finding(decode_rule, file, "no_xml1", table="XML1"))
        return findings
    ctx = HosoCtx(file, data, ruleset, lists or default_lists(), findings, broken)
    run_hoso(ctx, statuses)
    # read like the record: table by table, row by row (rule order kept within a row)
    findings.sort(key=lambda f: (int(f.table[3:]) if _TABLE.match(f.table) else 0, f.row or 0))
    return findings


def check_bytes(
    payload: bytes, name: str = "<bytes>", lang: str = "vi", lists: CodeLists | None = None
) -> CheckReport:
    """Check one QĐ130 file (envelope, base64-wrapped envelope or bare table); never raises on bad input."""
    start = time.perf_counter()
    ruleset = load_rules()
    report = CheckReport(file=name, lang=lang, rules=_statuses(ruleset))
    decode_rule = ruleset.by_id("QD130-FILE-001")
    payload = maybe_unwrap_base64(payload)
    try:
        env = read_envelope(payload)
    except UnsafeXml as exc:
        report.findings.append(_file_finding(decode_rule, name, "unsafe", str(exc)))
    except BadXml as exc:
        report.findings.append(_file_finding(decode_rule, name, "not_xml", str(exc)))
    except ValueError as exc:
        report.findings.append(_file_finding(decode_rule, name, "not_qd130", str(exc)))
    else:
        if not env.hosos:
            report.findings.append(_file_finding(decode_rule, name, "no_hoso", fld="DANHSACHHOSO"))
        if env.declared_count is not None and env.declared_count != len(env.hosos):
            rule = ruleset.by_id("QD130-FILE-002")
            report.findings.append(
                Finding(
                    name,
                    "",
                    "",
                    "",
                    None,
                    "SOLUONGHOSO",
                    rule.id,
                    rule.severity,
                    rule.msg_vi.format(value=env.declared_count, count=len(env.hosos)),
                    rule.msg_en.format(value=env.declared_count, count=len(env.hosos)),
                    rule.ref,
                )
            )
        vendor = _standard()
        for i, hoso in enumerate(env.hosos, start=1):
            data = decode_hoso(env, i, hoso, vendor)
            report.findings += check_hoso(data, name, lists, report.rules, env.bare_table)
            report.records += 1
    report.seconds = time.perf_counter() - start
    return report


def iter_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, plus every *.xml under named directories (sorted, recursive)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() == ".xml")
        else:
            out.append(p)
    return out


def check_paths(
    paths: Iterable[str | Path], lang: str = "vi", lists: CodeLists | None = None
) -> list[CheckReport]:
    """Check files and directories; one report per file (unreadable paths give a FILE-001 finding)."""
    reports = []
    for path in iter_files(paths):
        try:
            payload = path.read_bytes()
        except OSError as exc:
            rule = load_rules().by_id("QD130-FILE-001")
            rep = CheckReport(file=str(path), lang=lang, rules=_statuses(load_rules()))
            rep.findings.append(_file_finding(rule, str(path), "other", exc.strerror or str(exc)))
            reports.append(rep)
            continue
        reports.append(check_bytes(payload, str(path), lang, lists))
    return reports


def to_record_warnings(findings: Iterable[Finding], lang: str = "vi") -> list[RecordError]:
    """Findings as ingest warnings: table, STT and field of the finding; the reason, prefixed by the rule
    id, in `lang`, and both languages kept (`message`) so reports can be rendered in either."""
    out = []
    for f in findings:
        text = Texts({"vi": f"{f.rule_id}: {f.message_vi}", "en": f"{f.rule_id}: {f.message_en}"})
        out.append(
            RecordError(
                location="/".join(p for p in (f.table, f"STT={f.stt}" if f.stt else "", f.field) if p)
                or "file",
                reason=text.render(lang),
                record_key=f.ma_lk or None,
                severity="warning",
                table=f.table or None,
                stt=f.stt or None,
                field=f.field or None,
                message=text,
            )
        )
    return out

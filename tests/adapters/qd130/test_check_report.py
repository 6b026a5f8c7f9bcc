"""Check reports as JSON, CSV and rich tables, in Vietnamese or English, and the exit code contract."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console

from adapters.qd130.check import check_bytes, to_record_warnings
from adapters.qd130.check_report import exit_code, findings_table, rules_table, to_csv, to_json
from adapters.synth.violations import inject

from .conftest import SAMPLES


@pytest.fixture(scope="module")
def reports():
    """A clean sample, the sample with its two real errors, and a file with only a warning."""
    clean = check_bytes((SAMPLES / "qd130-outpatient.xml").read_bytes(), "ngoai-tru.xml")
    errors = check_bytes((SAMPLES / "qd130-inpatient-referral.xml").read_bytes(), "noi-tru.xml")
    warned = inject((SAMPLES / "qd130-outpatient.xml").read_bytes(), "QD130-ALL-016")
    warning = check_bytes(warned.xml, "canh-bao.xml")
    assert [f.severity for f in warning.findings] == ["W"]
    return clean, errors, warning


def test_exit_code_is_0_when_clean_2_on_errors_and_1_on_warnings_only_when_strict(reports):
    clean, errors, warning = reports
    assert exit_code([clean]) == 0
    assert exit_code([clean], strict=True) == 0
    assert exit_code([clean, warning]) == 0
    assert exit_code([clean, warning], strict=True) == 1
    assert exit_code([warning, errors], strict=True) == 2
    assert exit_code([]) == 0


def test_json_lists_findings_rules_and_totals(reports):
    doc = json.loads(to_json(reports))
    assert (doc["files"], doc["errors"], doc["warnings"]) == (3, 2, 1)
    noi_tru = doc["reports"][1]
    assert noi_tru["file"] == "noi-tru.xml" and noi_tru["records"] == 1
    first = noi_tru["findings"][0]
    assert first == {
        "file": "noi-tru.xml",
        "ma_lk": "79999_2024_04_BN000456_BA0007",
        "table": "XML13",
        "stt": "",
        "row": 1,
        "field": "PP_DIEUTRI",
        "rule_id": "QD130-ALL-017",
        "severity": "E",
        "message": "PP_DIEUTRI khác giá trị PP_DIEU_TRI ở Bảng 1",
        "legal_ref": "QĐ 4750/QĐ-BYT, Phụ lục Bảng 6, 13, 14, 15: chỉ tiêu lấy theo Bảng 1",
    }
    statuses = {r["rule_id"]: r for r in noi_tru["rules"]}
    assert statuses["QD130-XML1-013"] == {"rule_id": "QD130-XML1-013", "status": "checked", "checked": 1}
    assert statuses["QD130-XML1-024"]["status"] == "not_checked" and statuses["QD130-XML1-024"]["reason"]


def test_json_in_english(reports):
    doc = json.loads(to_json(reports, lang="en"))
    assert doc["reports"][1]["findings"][0]["message"] == "PP_DIEUTRI differs from PP_DIEU_TRI in XML1"


def test_csv_has_one_line_per_finding_with_a_header(reports):
    rows = list(csv.DictReader(io.StringIO(to_csv(reports))))
    assert len(rows) == 3
    assert rows[0]["rule_id"] == "QD130-ALL-017" and rows[0]["table"] == "XML13"
    assert rows[2]["file"] == "canh-bao.xml" and rows[2]["severity"] == "W"
    assert rows[2]["stt"] == "1" and rows[2]["field"] == "NGAY_KQ"
    assert "nằm ngoài thời gian điều trị" in rows[2]["message"]


def test_rich_tables_render_findings_and_rules_not_checked(reports):
    console = Console(record=True, width=250)
    console.print(findings_table(reports))
    console.print(rules_table(reports))
    text = console.export_text()
    assert "Kết quả kiểm tra QĐ 130" in text and "QD130-ALL-017" in text and "PP_DIEUTRI" in text
    assert "Quy tắc chưa kiểm tra được" in text and "QD130-XML1-024" in text and "chưa kiểm tra" in text
    english = Console(record=True, width=250)
    english.print(findings_table(reports, lang="en"))
    assert "QĐ 130 check results" in english.export_text()


def test_findings_become_ingest_warnings(reports):
    _, errors, _ = reports
    warnings = to_record_warnings(errors.findings)
    assert [w.location for w in warnings] == ["XML13/PP_DIEUTRI", "XML13/PP_DIEU_TRI"]
    assert all(w.severity == "warning" and w.reason.startswith("QD130-ALL-017: ") for w in warnings)
    assert warnings[0].record_key == "79999_2024_04_BN000456_BA0007"

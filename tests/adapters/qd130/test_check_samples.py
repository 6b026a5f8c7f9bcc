"""The shared QĐ130 samples pass the agency-style check, except where they really break a rule."""

from __future__ import annotations

import importlib.util

from adapters.qd130.check import check_bytes, check_paths
from adapters.qd130.check_report import CHECKED, NOT_CHECKED

from .conftest import SAMPLES

ALWAYS_NOT_CHECKED = {  # lists this project cannot ship yet (see mappings/qd130/lists/README.md)
    "QD130-XML1-003",
    "QD130-XML1-024",
    "QD130-XML1-025",
    "QD130-XML1-037",
    "QD130-XML2-005",
    "QD130-XML3-010",
}


def test_outpatient_sample_is_clean():
    report = check_bytes((SAMPLES / "qd130-outpatient.xml").read_bytes(), "qd130-outpatient.xml")
    assert report.records == 1
    assert report.findings == []


def test_inpatient_sample_has_exactly_the_two_treatment_texts_that_differ_from_xml1():
    # XML13 repeats the treatment method in PP_DIEUTRI and PP_DIEU_TRI; both must equal XML1 PP_DIEU_TRI
    # ("Điều trị nội khoa: kháng sinh tĩnh mạch") but the sample writes other texts.
    report = check_bytes((SAMPLES / "qd130-inpatient-referral.xml").read_bytes(), "inpatient.xml")
    got = [(f.rule_id, f.table, f.field, f.severity, f.ma_lk) for f in report.findings]
    assert got == [
        ("QD130-ALL-017", "XML13", "PP_DIEUTRI", "E", "79999_2024_04_BN000456_BA0007"),
        ("QD130-ALL-017", "XML13", "PP_DIEU_TRI", "E", "79999_2024_04_BN000456_BA0007"),
    ]
    assert report.findings[0].message_vi == "PP_DIEUTRI khác giá trị PP_DIEU_TRI ở Bảng 1"


def test_samples_report_which_rules_could_not_be_checked_and_why():
    (report,) = check_paths([SAMPLES / "qd130-outpatient.xml"])
    not_checked = {s.rule_id: s for s in report.not_checked()}
    expected = set(ALWAYS_NOT_CHECKED)
    if importlib.util.find_spec("mappings.terminology") is None:
        expected.add("QD130-XML1-021")  # the ICD-10 list arrives with mappings/terminology.py
    assert set(not_checked) == expected
    assert all(s.status == NOT_CHECKED and s.reason_vi and s.reason_en for s in not_checked.values())
    # the 2024 episode dates fall inside the QĐ 824 lists, so these are checked
    assert report.rules["QD130-XML1-022"].status == CHECKED
    assert report.rules["QD130-XML1-023"].status == CHECKED


def test_directory_check_reads_every_xml_file():
    reports = check_paths([SAMPLES])
    names = sorted(r.file.rsplit("/", 1)[-1] for r in reports)
    assert names == ["qd130-inpatient-referral.xml", "qd130-outpatient.decoded.xml", "qd130-outpatient.xml"]
    decoded = next(r for r in reports if r.file.endswith("decoded.xml"))
    # the human-readable decoded sample is not a transport file: one clear file-level error
    assert [(f.rule_id, f.severity) for f in decoded.findings] == [("QD130-FILE-001", "E")]
    assert "không phải hồ sơ GIAMDINHHS" in decoded.findings[0].message_vi

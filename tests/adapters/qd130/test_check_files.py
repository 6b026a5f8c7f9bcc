"""File-level behaviour of the check: envelope variants, unreadable parts, several HOSO per file."""

from __future__ import annotations

import base64

from adapters.qd130.check import check_bytes, check_paths
from adapters.synth.envelope import build_envelope, read_files

from .conftest import SAMPLES


def _sample_files(name: str = "qd130-outpatient.xml") -> list[tuple[str, bytes]]:
    return read_files((SAMPLES / name).read_bytes())[0]


def _rules(report) -> list[tuple[str, str, str]]:
    return [(f.rule_id, f.table, f.field) for f in report.findings]


def test_whole_file_base64_as_sent_to_the_gateway_is_checked_like_the_plain_file():
    plain = (SAMPLES / "qd130-inpatient-referral.xml").read_bytes()
    wrapped = base64.b64encode(plain)
    assert _rules(check_bytes(wrapped)) == _rules(check_bytes(plain))
    assert check_bytes(wrapped).records == 1


def test_text_that_is_not_xml_is_one_file_error():
    report = check_bytes(b"MA_LK;HO_TEN\n123;Nguyen Van A\n", "bang-ke.csv")
    assert _rules(report) == [("QD130-FILE-001", "", "")]
    assert report.findings[0].message_vi == "Không đọc được: không phải XML hợp lệ"
    assert report.records == 0


def test_dtd_and_entities_are_refused_before_parsing():
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><GIAMDINHHS>&a;</GIAMDINHHS>'
    report = check_bytes(bomb)
    assert _rules(report) == [("QD130-FILE-001", "", "")]
    assert "DTD/ENTITY" in report.findings[0].message_vi


def test_other_documents_are_named_as_such():
    report = check_bytes(b"<HSDLGCS><GIAYCHUNGSINH/></HSDLGCS>", "giay-chung-sinh.xml")
    assert "không phải hồ sơ GIAMDINHHS" in report.findings[0].message_vi
    assert "HSDLGCS" in report.findings[0].message_en


def test_undecodable_table_is_reported_and_its_totals_are_not_judged():
    files = [(loai, b"@@@" if loai == "XML2" else body) for loai, body in _sample_files()]
    env = build_envelope("79999", [files]).replace(base64.b64encode(b"@@@"), b"!!not base64!!")
    report = check_bytes(env)
    # XML1 T_THUOC and T_TONGCHI_BV cannot be compared with drug rows nobody could read
    assert _rules(report) == [("QD130-FILE-001", "XML2", "NOIDUNGFILE")]
    assert report.findings[0].message_vi == "Không đọc được: NOIDUNGFILE không phải base64 hợp lệ"
    assert report.findings[0].ma_lk == "79999_2024_03_BN000123_KB01"


def test_table_content_under_the_wrong_loaihoso_is_reported():
    files = [
        ("XML2" if loai == "XML3" else "XML3" if loai == "XML2" else loai, b) for loai, b in _sample_files()
    ]
    report = check_bytes(build_envelope("79999", [files]))
    assert sorted((r, t) for r, t, _ in _rules(report)) == [
        ("QD130-FILE-001", "XML2"),
        ("QD130-FILE-001", "XML3"),
    ]
    assert "không phải bảng mà LOAIHOSO khai báo" in report.findings[0].message_vi


def test_record_without_xml1_is_one_error_and_no_guesswork():
    files = [(loai, b) for loai, b in _sample_files() if loai != "XML1"]
    report = check_bytes(build_envelope("79999", [files]))
    assert _rules(report) == [("QD130-FILE-001", "XML1", "")]
    assert "thiếu Bảng 1" in report.findings[0].message_vi


def test_each_hoso_of_a_multi_record_file_is_checked_on_its_own_and_the_count_is_verified():
    out = _sample_files("qd130-outpatient.xml")
    inp = _sample_files("qd130-inpatient-referral.xml")
    report = check_bytes(build_envelope("79999", [out, inp], declared=3), "hai-ho-so.xml")
    assert report.records == 2
    assert [(f.rule_id, f.ma_lk, f.field) for f in report.findings] == [
        ("QD130-FILE-002", "", "SOLUONGHOSO"),
        ("QD130-ALL-017", "79999_2024_04_BN000456_BA0007", "PP_DIEUTRI"),
        ("QD130-ALL-017", "79999_2024_04_BN000456_BA0007", "PP_DIEU_TRI"),
    ]
    assert report.findings[0].message_vi == "SOLUONGHOSO = 3 nhưng tệp có 2 HOSO"
    assert report.rules["QD130-XML1-013"].checked == 2


def test_path_that_cannot_be_read_is_a_file_error(tmp_path):
    (tmp_path / "a.xml").write_bytes((SAMPLES / "qd130-outpatient.xml").read_bytes())
    reports = check_paths([tmp_path, tmp_path / "thieu.xml"])
    assert [r.file.rsplit("/", 1)[-1] for r in reports] == ["a.xml", "thieu.xml"]
    assert reports[0].findings == []
    assert _rules(reports[1]) == [("QD130-FILE-001", "", "")]

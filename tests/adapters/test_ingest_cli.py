"""`lienthong ingest`: every rejected record named (file, MA_LK, table, STT, field), exit codes, reports."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from lienthong.cli import app

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
GOOD = SAMPLES / "qd130" / "79001-ngoai-tru.xml"
ONE_BAD = SAMPLES / "qd130" / "79001-hai-ho-so-mot-loi.xml"
BAD_MA_LK = "79001_20240507_BN00110000005_000005"


def run(*args: str):
    """Invoke the CLI (output is not a terminal here, as under cron or in a pipe)."""
    return CliRunner().invoke(app, list(args))


def test_a_rejected_visit_is_named_in_full_and_the_exit_code_is_1(db_url):
    r = run("--lang", "en", "ingest", str(ONE_BAD), "--db", db_url)
    assert r.exit_code == 1, r.output
    line = next(x for x in r.output.splitlines() if "ERROR" in x)
    # the whole line, never cut: MA_LK, table, row (STT), field and the complete reason
    assert line.strip() == (
        f"ERROR  MA_LK={BAD_MA_LK} XML1 STT=1 NGAY_RA: "
        "'202513450800' is not a real calendar date/time: there is no month 13"
    )
    assert f"{ONE_BAD}: partial, 1 accepted, 1 rejected" in r.output


def test_the_same_summary_in_vietnamese(db_url):
    r = run("--lang", "vi", "ingest", str(ONE_BAD), "--db", db_url)
    assert r.exit_code == 1, r.output
    assert (
        f"LỖI  MA_LK={BAD_MA_LK} XML1 STT=1 NGAY_RA: '202513450800' không phải ngày giờ có thật: không có tháng 13"
        in r.output
    )
    assert "1 tệp: nhận 1 hồ sơ, từ chối 1, 0 cảnh báo" in r.output


def test_every_record_accepted_exits_0(db_url):
    r = run("--lang", "en", "ingest", str(GOOD), str(SAMPLES / "hl7v2"), "--db", db_url)
    assert r.exit_code == 0, r.output
    assert "3 file(s): 3 record(s) accepted, 0 rejected" in r.output


def test_a_missing_path_exits_2_and_is_named(db_url, tmp_path):
    missing = tmp_path / "khong-co" / "ho-so.xml"
    r = run("--lang", "en", "ingest", str(missing), str(GOOD), "--db", db_url)
    assert r.exit_code == 2, r.output
    assert f"{missing}: unreadable" in r.output
    assert "no such file or folder" in r.output
    assert f"{GOOD}: processed, 1 accepted" in r.output  # the other path is still ingested


def test_a_file_that_is_not_xml_or_not_recognised_exits_2(db_url, tmp_path):
    (tmp_path / "ghi-chu.txt").write_text("Danh sách bệnh nhân tháng 3", encoding="utf-8")
    (tmp_path / "hong.xml").write_bytes(b"<GIAMDINHHS><THONGTINDONVI><MACSKCB>79001")
    r = run("--lang", "vi", "ingest", str(tmp_path), "--db", db_url)
    assert r.exit_code == 2, r.output
    assert "không bộ chuyển đổi nào nhận dạng được dữ liệu này" in r.output
    assert "ghi-chu.txt: thất bại" in r.output
    assert "hong.xml: thất bại" in r.output


def test_report_csv_has_one_row_per_error_and_warning(db_url, tmp_path):
    report = tmp_path / "bao-cao.csv"
    r = run("--lang", "vi", "ingest", str(SAMPLES), "--report", str(report), "--db", db_url)
    assert r.exit_code == 1, r.output
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    errors = [row for row in rows if row["severity"] == "error"]
    assert len(errors) == 1
    (err,) = errors
    assert (err["file"], err["ma_lk"], err["table"], err["stt"], err["field"]) == (
        str(ONE_BAD),
        BAD_MA_LK,
        "XML1",
        "1",
        "NGAY_RA",
    )
    assert err["message"] == "'202513450800' không phải ngày giờ có thật: không có tháng 13"
    assert err["dead_letter_id"].isdigit()


def test_report_json_lists_files_with_their_errors(db_url, tmp_path):
    report = tmp_path / "bao-cao.json"
    run("--lang", "en", "ingest", str(ONE_BAD), str(GOOD), "--report", str(report), "--db", db_url)
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["exit_code"] == 1
    by_file = {f["file"]: f for f in doc["files"]}
    assert by_file[str(GOOD)]["errors"] == []
    assert [e["field"] for e in by_file[str(ONE_BAD)]["errors"]] == ["NGAY_RA"]


def test_check_findings_come_as_warnings_naming_rule_and_place_and_can_be_switched_off(db_url, tmp_path):
    # The synthetic generator leaves out MAHUYEN_CU_TRU: the agency would reject that, ingest warns.
    from adapters.synth import generate

    visit = generate(hospitals=1, visits=1, seed=3).visits[0]
    path = tmp_path / visit.filename
    path.write_bytes(visit.xml)
    on = run("--lang", "vi", "ingest", str(path), "--warnings", "--db", db_url)
    assert on.exit_code == 0, on.output
    assert (
        f"CẢNH BÁO  MA_LK={visit.ma_lk} XML1 STT=1 MAHUYEN_CU_TRU: "
        "QD130-XML1-001: Thiếu chỉ tiêu bắt buộc MAHUYEN_CU_TRU" in on.output
    )
    off = run("--lang", "vi", "ingest", str(path), "--warnings", "--no-check", "--db", db_url)
    assert "QD130-" not in off.output
    assert "0 cảnh báo" in off.output


def test_watch_moves_files_and_prints_the_same_summary(db_url, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copy(ONE_BAD, drop / ONE_BAD.name)
    r = run("--lang", "en", "watch", str(drop), "--once", "--db", db_url)
    assert r.exit_code == 0, r.output
    assert (drop / "failed" / ONE_BAD.name).exists()
    assert f"MA_LK={BAD_MA_LK} XML1 STT=1 NGAY_RA" in r.output


def test_the_language_chosen_for_one_run_does_not_stick_to_the_process(db_url):
    from fhir_server.i18n import current_lang

    run("--lang", "vi", "ingest", str(GOOD), "--db", db_url)
    assert current_lang() == "en"


def test_hl7v2_problems_name_the_message_and_the_segment_field(db_url, tmp_path):
    # PID-7 (birth date) is not a date: the message is rejected, named by MSH-10 and the field.
    adt = (SAMPLES / "hl7v2" / "adt-a01-nhap-vien.hl7").read_bytes().replace(b"|19720625|", b"|1972-06-XX|")
    path = tmp_path / "adt-sai-ngay-sinh.hl7"
    path.write_bytes(adt)
    r = run("--lang", "en", "ingest", str(path), "--db", db_url)
    assert r.exit_code == 1, r.output
    line = next(x for x in r.output.splitlines() if "ERROR" in x)
    assert line.strip().startswith("ERROR  MSH-10=DEMO-ADT-0001 PID")
    assert "1972-06-XX" in line


def test_ingest_refreshes_planner_statistics_of_the_tables_it_filled(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's ANALYZE counters; SQLite runs PRAGMA optimize, which keeps no counter")
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    count = text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'resource'")
    with engine.connect() as conn:
        before = conn.execute(count).scalar_one()
    assert run("ingest", str(GOOD), "--db", db_url).exit_code == 0
    with engine.connect() as conn:
        assert conn.execute(count).scalar_one() == before + 1
    engine.dispose()

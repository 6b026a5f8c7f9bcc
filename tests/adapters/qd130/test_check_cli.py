"""`lienthong check` and `POST /qd130/$check`: findings naming file, MA_LK, table, STT, field and rule."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lienthong.cli import app

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "qd130"
CLEAN = SAMPLES / "79001-ngoai-tru.xml"
ONE_BAD = SAMPLES / "79001-hai-ho-so-mot-loi.xml"
BAD_MA_LK = "79001_20240507_BN00110000005_000005"


def run(*args: str):
    """Invoke the CLI in-process (not a terminal)."""
    return CliRunner().invoke(app, list(args))


def test_the_shipped_good_samples_check_clean_and_exit_0():
    r = run("--lang", "en", "check", str(CLEAN), str(SAMPLES / "01001-noi-tru.xml"), "--no-rules")
    assert r.exit_code == 0, r.output
    assert "2 file(s), 2 record(s): 0 error(s), 0 warning(s)" in r.output


def test_an_error_is_named_in_vietnamese_and_exits_2():
    r = run("--lang", "vi", "check", str(SAMPLES))
    assert r.exit_code == 2, r.output
    assert (
        f"  E QD130-XML1-011  MA_LK={BAD_MA_LK} XML1 STT=1 NGAY_RA: "
        "NGAY_RA = 202513450800 không phải thời điểm hợp lệ theo định dạng yyyyMMddHHmm" in r.output
    )
    assert "3 tệp, 4 hồ sơ: 1 lỗi, 0 cảnh báo" in r.output
    assert "Quy tắc chưa kiểm tra được" in r.output  # rules whose list is missing are never passed silently


def test_json_report_in_english(tmp_path):
    out = tmp_path / "ket-qua.json"
    r = run("--lang", "en", "check", str(ONE_BAD), "--format", "json", "--out", str(out))
    assert r.exit_code == 2
    doc = json.loads(out.read_text(encoding="utf-8"))
    (finding,) = doc["reports"][0]["findings"]
    assert (finding["ma_lk"], finding["table"], finding["stt"], finding["field"], finding["rule_id"]) == (
        BAD_MA_LK,
        "XML1",
        "1",
        "NGAY_RA",
        "QD130-XML1-011",
    )
    assert finding["message"] == "NGAY_RA = 202513450800 is not a valid yyyyMMddHHmm date-time"
    assert finding["legal_ref"]


def test_csv_report_on_stdout():
    r = run("--lang", "vi", "check", str(ONE_BAD), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert [(x["rule_id"], x["field"]) for x in rows] == [("QD130-XML1-011", "NGAY_RA")]


def test_strict_turns_warnings_alone_into_exit_code_1(tmp_path):
    from adapters.synth.violations import inject

    broken = inject(CLEAN.read_bytes(), "QD130-ALL-016")  # a warning-level rule
    path = tmp_path / "canh-bao.xml"
    path.write_bytes(broken.xml)
    assert run("check", str(path)).exit_code == 0
    assert run("check", str(path), "--strict").exit_code == 1


def test_a_missing_path_is_an_error_finding():
    r = run("--lang", "en", "check", "/khong/co/tep.xml", "--format", "json")
    assert r.exit_code == 2
    assert json.loads(r.output)["reports"][0]["findings"][0]["rule_id"] == "QD130-FILE-001"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_http_check_follows_accept_language(client):
    body = ONE_BAD.read_bytes()
    vi = await client.post(
        "http://test/qd130/$check?name=bv.xml", content=body, headers={"Accept-Language": "vi"}
    )
    en = await client.post("http://test/qd130/$check", content=body)
    assert vi.status_code == en.status_code == 200
    assert vi.headers["X-Check-Exit-Code"] == "2"
    assert vi.json()["file"] == "bv.xml" and vi.json()["exit_code"] == 2
    assert vi.json()["findings"][0]["message"].endswith(
        "không phải thời điểm hợp lệ theo định dạng yyyyMMddHHmm"
    )
    assert en.json()["findings"][0]["message"].endswith("is not a valid yyyyMMddHHmm date-time")
    nothing_stored = await client.get("Patient")
    assert nothing_stored.json()["total"] == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_http_check_answers_csv_on_request(client):
    r = await client.post("http://test/qd130/$check?_format=csv&lang=en", content=CLEAN.read_bytes())
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines() == ["file,ma_lk,table,stt,field,rule_id,severity,message,legal_ref"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_http_ingest_reasons_follow_accept_language(client):
    r = await client.post(
        "http://test/ingest/qd130", content=ONE_BAD.read_bytes(), headers={"Accept-Language": "vi"}
    )
    assert r.status_code == 207
    rejected = next(x for x in r.json()["records"] if x["status"] == "rejected")
    (err,) = rejected["errors"]
    assert (err["table"], err["stt"], err["field"]) == ("XML1", "1", "NGAY_RA")
    assert err["reason"] == "'202513450800' không phải ngày giờ có thật: không có tháng 13"

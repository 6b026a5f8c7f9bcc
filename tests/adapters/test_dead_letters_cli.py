"""`lienthong dead-letters list|show|export` and `replay`: each dead letter named like the ingest summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from adapters.qd130.vendors import reload_vendors
from adapters.synth.violations import Dossier
from lienthong.cli import app

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ONE_BAD = SAMPLES / "qd130" / "79001-hai-ho-so-mot-loi.xml"
BAD_MA_LK = "79001_20240507_BN00110000005_000005"


def run(*args: str):
    """Invoke the CLI in-process (not a terminal)."""
    return CliRunner().invoke(app, list(args))


def test_list_names_file_ma_lk_table_stt_field_and_error(db_url):
    run("ingest", str(ONE_BAD), "--db", db_url)
    r = run("--lang", "vi", "dead-letters", "list", "--db", db_url)
    assert r.exit_code == 0, r.output
    assert "Hồ sơ lỗi (1/1)" in r.output
    (line,) = [x for x in r.output.splitlines() if x.startswith("1\t")]
    assert line == (
        f"1\tđang mở\t{ONE_BAD}\tMA_LK={BAD_MA_LK} XML1 STT=1 NGAY_RA: "
        "'202513450800' không phải ngày giờ có thật: không có tháng 13"
    )


def test_errors_stored_in_one_language_are_shown_in_the_other(db_url):
    run("--lang", "en", "ingest", str(ONE_BAD), "--db", db_url)
    vi = run("--lang", "vi", "dead-letters", "show", "1", "--db", db_url)
    en = run("--lang", "en", "dead-letters", "show", "1", "--db", db_url)
    assert "không có tháng 13" in vi.output
    assert "there is no month 13" in en.output
    assert BAD_MA_LK in vi.output and "NGAY_RA" in vi.output


def test_show_unknown_id_says_so_and_exits_1(db_url):
    r = run("--lang", "vi", "dead-letters", "show", "42", "--db", db_url)
    assert r.exit_code == 1
    assert "không có hồ sơ lỗi mã 42" in r.output


def test_export_json_and_csv_carry_every_error(db_url, tmp_path):
    run("ingest", str(ONE_BAD), "--db", db_url)
    out = tmp_path / "dl.json"
    r = run("--lang", "en", "dead-letters", "export", "--out", str(out), "--payloads", "--db", db_url)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    (item,) = doc["items"]
    assert (item["file"], item["ma_lk"], item["table"], item["stt"], item["field"]) == (
        str(ONE_BAD),
        BAD_MA_LK,
        "XML1",
        "1",
        "NGAY_RA",
    )
    assert item["errors"][0]["message"].endswith("there is no month 13")
    assert item["payload_base64"]
    out_csv = tmp_path / "dl.csv"
    run("--lang", "vi", "dead-letters", "export", "--out", str(out_csv), "--db", db_url)
    (row,) = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert row["ma_lk"] == BAD_MA_LK
    assert "XML1 STT=1 NGAY_RA: '202513450800' không phải ngày giờ có thật" in row["errors"]


def test_replay_says_per_dead_letter_what_happened(db_url, tmp_path, monkeypatch):
    # HIS "his_y" writes decimal commas: rejected until its vendor profile says so (the mapping fix).
    d = Dossier((SAMPLES / "qd130" / "79001-ngoai-tru.xml").read_bytes())
    d.set("XML2", 0, "DON_GIA", d.need("XML2", 0, "DON_GIA") + ",5")
    comma = tmp_path / "dau-phay.xml"
    comma.write_bytes(d.to_bytes())
    profile = tmp_path / "vendors" / "his_y.yaml"
    profile.parent.mkdir()
    profile.write_text("name: his_y\ndecimal_separator: '.'\n", encoding="utf-8")
    monkeypatch.setenv("LIENTHONG_VENDOR_PATH", str(profile.parent))
    reload_vendors()
    try:
        first = run("ingest", str(comma), str(ONE_BAD), "--vendor", "his_y", "--db", db_url)
        assert first.exit_code == 1, first.output
        profile.write_text("name: his_y\ndecimal_separator: ','\n", encoding="utf-8")
        reload_vendors()
        r = run("--lang", "en", "replay", "--db", db_url)
    finally:
        reload_vendors()
    assert r.exit_code == 1, r.output  # the bad date still fails
    assert "1 of 2 dead letter(s) replayed" in r.output
    lines = r.output.splitlines()
    assert any(x.startswith("1\t") and "\treplayed\t1 record(s) written: " in x for x in lines), r.output
    assert (
        f"2\t{BAD_MA_LK}\tfailed\tXML1 STT=1 NGAY_RA: "
        "'202513450800' is not a real calendar date/time: there is no month 13"
    ) in lines
    listed = run("--lang", "en", "dead-letters", "list", "--status", "all", "--db", db_url)
    assert "\treplayed\t" in listed.output and "\topen\t" in listed.output

"""The CLI speaks the reader's language: --lang anywhere, LIENTHONG_LANG, or a Vietnamese locale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from lienthong.cli import app
from lienthong.main import pop_lang

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `python -m lienthong` as a user would, with a clean locale plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "LIENTHONG_LANG"))}
    return subprocess.run(
        [sys.executable, "-m", "lienthong", *args],
        capture_output=True,
        text=True,
        env={**base, "COLUMNS": "200", **env},
        cwd=ROOT,
        timeout=120,
    )


def test_lang_option_is_found_anywhere_on_the_command_line():
    assert pop_lang(["ingest", "--lang", "vi", "a.xml"]) == ("vi", ["ingest", "a.xml"])
    assert pop_lang(["--lang=en", "check", "x"]) == ("en", ["check", "x"])
    assert pop_lang(["ingest", "--", "--lang"]) == (None, ["ingest", "--", "--lang"])


def test_a_vietnamese_locale_gives_vietnamese_help_and_output():
    r = _cli("--help", LANG="vi_VN.UTF-8")
    assert "Liên Thông: chuyển dữ liệu bệnh viện Việt Nam sang FHIR R4" in r.stdout
    assert "Kiểm tra tệp QĐ130 theo quy tắc giám định" in r.stdout
    r = _cli("check", str(SAMPLES / "qd130" / "79001-ngoai-tru.xml"), "--no-rules", LANG="vi_VN.UTF-8")
    assert r.returncode == 0
    assert "1 tệp, 1 hồ sơ: 0 lỗi, 0 cảnh báo" in r.stdout


def test_english_otherwise_and_the_option_wins_over_the_locale():
    r = _cli("check", str(SAMPLES / "qd130" / "79001-ngoai-tru.xml"), "--no-rules", LANG="en_US.UTF-8")
    assert "1 file(s), 1 record(s): 0 error(s), 0 warning(s)" in r.stdout
    r = _cli("check", str(SAMPLES / "qd130"), "--lang", "en", "--no-rules", LANG="vi_VN.UTF-8")
    assert r.returncode == 2
    assert "3 file(s), 4 record(s): 1 error(s), 0 warning(s)" in r.stdout
    r = _cli("adapters", LIENTHONG_LANG="vi", LANG="en_US.UTF-8")
    assert "Bộ chuyển đổi" in r.stdout


def test_link_all_prints_a_summary_table_in_both_languages(db_url):
    CliRunner().invoke(app, ["ingest", str(SAMPLES), "--db", db_url])
    vi = CliRunner().invoke(app, ["--lang", "vi", "link", "--all", "--db", db_url])
    en = CliRunner().invoke(app, ["--lang", "en", "link", "--all", "--db", db_url])
    assert vi.exit_code == en.exit_code == 0
    assert "{" not in vi.output  # no raw dict
    vi_rows = {
        line.strip("│ ").split("│")[0].strip(): line.split("│")[-2].strip()
        for line in vi.output.splitlines()
        if "│" in line
    }
    en_rows = {
        line.strip("│ ").split("│")[0].strip(): line.split("│")[-2].strip()
        for line in en.output.splitlines()
        if "│" in line
    }
    # the three records of DƯƠNG QUỐC PHÚC (two QĐ130 hospitals, one HL7 v2 hospital) are one person
    assert vi_rows["Số liên kết (cùng một người)"] == en_rows["links (same person)"] == "3"
    assert en_rows["pairs queued for review"] == "0"

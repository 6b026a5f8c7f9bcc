"""Every command of the README tour runs, as written, on a fresh copy of the repository's files.

The copy holds what `git ls-files` lists (tracked plus new, not ignored files): what a fresh clone
has, so a sample, catalog or module that is not in git fails here. Commands run through bash from the
copy's root with `lienthong` = `python -m lienthong` importing the copy. Only the ports change (8080 and
2575 may be taken on a shared machine); long-running commands (serve, mllp, watch) are started, checked
for readiness, and the server is kept up for the `curl` lines. The two install lines at the top of the
README are the test command itself (they built the environment this test runs in).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
LONG_RUNNING = ("lienthong serve", "lienthong mllp", "lienthong watch")
# Exit codes the README announces; every other command must exit 0.
EXPECTED_EXIT = {
    "lienthong check samples/qd130/": 2,  # one sample file has an error on purpose
    "lienthong ingest samples/": 1,  # ... so one record is rejected
    "lienthong ingest samples/ --report report.csv": 1,
    "lienthong replay": 1,  # the bad date is still bad
    "lienthong --lang vi ingest samples/qd130/": 1,
}


def readme_commands() -> list[str]:
    """Command lines of the README's ```sh blocks, comments removed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line:
                lines.append(line)
    return lines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fresh_copy(dest: Path) -> Path:
    """The files a clone would have (tracked + untracked-but-not-ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        src = ROOT / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def _wait(check, what: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not check():
        if proc.poll() is not None:
            raise AssertionError(
                f"{what} exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}"
            )
        assert time.time() < deadline, f"{what} did not become ready"
        time.sleep(0.2)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """Run the whole tour once; yields (outputs by command, server base URL)."""
    repo = _fresh_copy(tmp_path_factory.mktemp("clone"))
    shim = repo / ".bin"
    shim.mkdir()
    (shim / "lienthong").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m lienthong "$@"\n', encoding="utf-8"
    )
    (shim / "lienthong").chmod(0o755)
    http_port, mllp_port = _free_port(), _free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LIENTHONG_", "LC_", "LANG", "PYTHONPATH"))
    }
    env.update(
        PATH=f"{shim}:{env['PATH']}", PYTHONPATH=str(repo), LIENTHONG_PORT=str(http_port), COLUMNS="200"
    )
    outputs: dict[str, subprocess.CompletedProcess] = {}
    background: list[subprocess.Popen] = []
    base = f"http://127.0.0.1:{http_port}"

    def sh(cmd: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", "-c", cmd],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **kw,
        )

    try:
        for line in readme_commands():
            cmd = line.replace("8080", str(http_port)).replace("2575", str(mllp_port))
            if line.startswith(LONG_RUNNING):
                proc = sh(cmd, start_new_session=True)
                if line.startswith("lienthong serve"):
                    _wait(lambda: _http_ok(f"{base}/fhir/metadata"), line, proc)
                    background.append(proc)
                elif line.startswith("lienthong mllp"):
                    _wait(lambda: _port_open(mllp_port), line, proc)
                    proc.terminate()
                    proc.wait(timeout=30)
                else:  # watch: ready once it has created its done/ and failed/ folders
                    folder = repo / line.split()[2]
                    _wait(lambda: (folder / "failed").is_dir(), line, proc)
                    proc.terminate()
                    proc.wait(timeout=30)
                outputs[line] = subprocess.CompletedProcess(cmd, 0, "", "")
                continue
            proc = sh(cmd)
            out, _ = proc.communicate(timeout=600)
            outputs[line] = subprocess.CompletedProcess(cmd, proc.returncode, out, "")
        yield outputs, base
    finally:
        for proc in background:
            proc.terminate()
            proc.wait(timeout=30)


def test_every_tour_command_exits_as_the_readme_says(tour):
    outputs, _base = tour
    assert len(outputs) >= 20
    wrong = {
        line: (res.returncode, res.stdout[-2000:])
        for line, res in outputs.items()
        if res.returncode != EXPECTED_EXIT.get(line, 0)
    }
    assert wrong == {}


def test_demo_urls_open_a_patient_seen_at_two_hospitals(tour):
    outputs, base = tour
    urls = [u for u in outputs["lienthong demo"].stdout.split() if u.startswith("http://")]
    view = next(u for u in urls if "/ui/patient/" in u)
    page = httpx.get(view, timeout=10)
    assert page.status_code == 200
    by_cccd = httpx.get(next(u for u in urls if "identifier=" in u), timeout=10).json()
    assert by_cccd["total"] >= 2  # one Patient record per hospital, same CCCD
    everything = httpx.get(next(u for u in urls if u.endswith("$everything")), timeout=10).json()
    assert everything["resourceType"] == "Bundle"


def test_ingest_and_check_name_the_bad_record(tour):
    outputs, _base = tour
    ingest = outputs["lienthong ingest samples/"].stdout
    assert "MA_LK=79001_20240507_BN00110000005_000005 XML1 STT=1 NGAY_RA:" in ingest
    vi = outputs["lienthong --lang vi ingest samples/qd130/"].stdout
    assert "không có tháng 13" in vi
    check = outputs["lienthong check samples/qd130/"].stdout
    assert "QD130-XML1-011" in check


def test_curl_lines_answer_as_described(tour):
    outputs, _base = tour
    curls = {line: res.stdout for line, res in outputs.items() if line.startswith("curl")}
    assert len(curls) == 6
    by_name, by_cccd, everything, posted, checked, missing = (json.loads(out) for out in curls.values())
    assert by_name["total"] == 3  # DƯƠNG QUỐC PHÚC at two QĐ130 hospitals and one HL7 v2 hospital
    assert by_cccd["total"] == 3
    assert everything["resourceType"] == "Bundle" and everything["total"] > 10
    assert posted["status"] == "processed"
    assert checked["exit_code"] == 2 and "không phải thời điểm hợp lệ" in checked["findings"][0]["message"]
    assert missing["issue"][0]["diagnostics"] == "Không tìm thấy Patient/khong-co"

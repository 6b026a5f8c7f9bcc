"""Secure by default (issue 13): `lienthong serve` without auth runs on loopback with a loud warning,
and refuses a network address unless --insecure-dev is given."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fhir_server.settings import Settings
from lienthong.exposure import exposure_warning, is_loopback

EXE = str(Path(sys.executable).with_name("lienthong"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_")}
    return {**env, "LIENTHONG_LANG": "vi", **extra}


def _serve_until_up(args: list[str], port: int, env: dict) -> str:
    """Start `lienthong serve`, wait for /fhir/metadata on loopback, stop it; return its output."""
    proc = subprocess.Popen([EXE, "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.time() < deadline, "server did not start"
            time.sleep(0.2)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    return out.decode()


def test_loopback_without_auth_serves_and_warns_in_vietnamese(tmp_path):
    port = _free_port()
    out = _serve_until_up(["--db", f"sqlite:///{tmp_path / 'lt.db'}", "--port", str(port)], port, _env())
    assert "CẢNH BÁO" in out
    assert "LIENTHONG_AUTH=jwt" in out


def _unstated_env(**extra: str) -> dict:
    """An environment naming no language: no LIENTHONG_*, and a C locale (a container, a systemd unit)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIENTHONG_", "LC_", "LANG"))}
    return {**env, "LANG": "C.UTF-8", **extra}


def test_warning_is_vietnamese_when_no_language_is_named(tmp_path):
    port = _free_port()
    args = ["--db", f"sqlite:///{tmp_path / 'lt.db'}", "--port", str(port)]
    out = _serve_until_up(args, port, _unstated_env())
    assert "CẢNH BÁO: xác thực đang TẮT" in out
    assert "WARNING: authentication is OFF" not in out


def test_warning_is_english_when_asked(tmp_path):
    port = _free_port()
    args = ["--db", f"sqlite:///{tmp_path / 'lt.db'}", "--port", str(port)]
    out = _serve_until_up(args, port, _unstated_env(LIENTHONG_LANG="en"))
    assert "WARNING: authentication is OFF" in out
    assert "CẢNH BÁO" not in out


def test_refusal_is_english_with_the_lang_flag(tmp_path):
    port = _free_port()
    done = subprocess.run(
        [EXE, "--lang", "en", "serve", "--db", f"sqlite:///{tmp_path / 'lt.db'}", "--host", "0.0.0.0"]
        + ["--port", str(port)],
        capture_output=True,
        env=_unstated_env(),
        timeout=60,
    )
    assert done.returncode == 2
    assert "Refusing to serve 0.0.0.0 without authentication" in done.stdout.decode()


def test_network_address_without_auth_refuses_to_start(tmp_path):
    port = _free_port()
    done = subprocess.run(
        [EXE, "serve", "--db", f"sqlite:///{tmp_path / 'lt.db'}", "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 2
    assert "0.0.0.0" in done.stdout.decode()
    assert "--insecure-dev" in done.stdout.decode()
    assert not (tmp_path / "lt.db").exists()  # refused before touching the database


def test_network_address_without_auth_starts_with_insecure_dev(tmp_path):
    port = _free_port()
    args = [
        "--db",
        f"sqlite:///{tmp_path / 'lt.db'}",
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--insecure-dev",
    ]
    out = _serve_until_up(args, port, _env())
    assert "--insecure-dev" in out
    assert "CẢNH BÁO" in out


def test_network_address_with_auth_needs_no_flag():
    settings = Settings(host="0.0.0.0", auth_mode="jwt", jwt_secret="x" * 32)
    assert exposure_warning(settings) is None


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.5", "::", "benhvien.local"))

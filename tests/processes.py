"""Real Lienthong processes for multi-process tests: `lienthong serve`, `lienthong worker`, `lienthong mllp`
as subprocesses on loopback ports, started and stopped (or killed) by the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

EXE = str(Path(sys.executable).with_name("lienthong"))


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    """One child process and how to reach it."""

    args: list[str]
    env: dict
    log: Path
    proc: subprocess.Popen | None = None
    port: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        """FHIR base URL (serve)."""
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self) -> Proc:
        """Start the command (output to the log file)."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def kill9(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown (the crash tests' fault)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung node)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after pause()."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def alive(self) -> bool:
        """Still running."""
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """What the process printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def child_env(**extra: str) -> dict:
    """The test's environment plus LIENTHONG_* settings for a child."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_")}
    env.update(extra)
    return env


def serve(db: str, tmp: Path, name: str = "serve", **env: str) -> Proc:
    """`lienthong serve` on a free port; returns once /fhir/metadata answers."""
    port = free_port()
    p = Proc(
        [EXE, "serve", "--db", db, "--port", str(port)], child_env(**env), tmp / f"{name}.log", port=port
    )
    p.start()
    wait_http(f"{p.base}/metadata", p)
    return p


def wait_http(url: str, p: Proc, timeout: float = 120) -> None:
    """Poll a URL until it answers (any status), or fail with the process output."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not p.alive():
            raise RuntimeError(f"process exited:\n{p.output()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    p.kill9()
    raise RuntimeError(f"{url} did not answer:\n{p.output()[-3000:]}")


def wait_port(port: int, p: Proc, timeout: float = 120) -> None:
    """Poll a TCP port until it accepts connections."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not p.alive():
            raise RuntimeError(f"process exited:\n{p.output()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    p.kill9()
    raise RuntimeError(f"port {port} never opened:\n{p.output()[-3000:]}")


def new_pg_database(admin_url: str, prefix: str) -> str:
    """Create an empty PostgreSQL database next to `admin_url`'s; returns its URL."""
    import uuid

    import psycopg

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url.rpartition('/')[0]}/{name}"


def drop_pg_database(url: str) -> None:
    """Drop a database made by new_pg_database (terminating its connections)."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

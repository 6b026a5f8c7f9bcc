"""Send a folder of HL7 v2 messages over MLLP, count ACK codes, then check the facts are findable over FHIR.

    .venv/bin/python bench/hl7v2_corpus_check.py tests/adapters/hl7v2/corpus           # own listeners
    .venv/bin/python bench/hl7v2_corpus_check.py DIR --mllp 127.0.0.1:2575 --fhir http://127.0.0.1:8080/fhir

Without --mllp/--fhir it starts `lienthong mllp` and `lienthong serve` on a scratch database (--db,
default a temporary SQLite file) and stops them afterwards. Each file is one message (*.hl7, *.txt, *.er7);
it is sent as is (BOM, \\n separators and all). After every ACK came back:
- each PID-3 identifier value (CX.1) is looked up with `Patient?identifier=<value>`;
- each numeric OBX value (OBX-2 NM, or SN with a plain number) is looked up with
  `Observation?code=<OBX-3.1>&value-quantity=<value>`, or `component-value-quantity` when OBX-5 repeats.
The message reader here is deliberately independent of adapters/hl7v2, so the check does not trust the
code it checks.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def segments(raw: bytes) -> list[str]:
    """Segments of one message (any of \\r, \\n, \\r\\n; BOM dropped)."""
    text = raw.decode("utf-8", "replace").lstrip("\ufeff")
    return [s for s in re.split(r"\r\n|\r|\n", text) if s.strip()]


def facts(raw: bytes) -> tuple[list[str], list[tuple[str, str, bool]]]:
    """(PID-3 identifier values, numeric OBX values as (code, value, repeated)) of one message."""
    segs = segments(raw)
    if not segs or not segs[0].startswith("MSH") or len(segs[0]) < 8:
        return [], []
    fs = segs[0][3]
    comp, rep = segs[0][4], segs[0][5]
    ids: list[str] = []
    values: list[tuple[str, str, bool]] = []
    for seg in segs:
        f = seg.split(fs)
        if f[0] == "PID" and len(f) > 3:
            for r in f[3].split(rep):
                value = r.split(comp)[0].strip()
                if value and value not in ids:
                    ids.append(value)
        elif f[0] == "OBX" and len(f) > 5:
            vtype = f[2].strip().upper()
            code = f[3].split(comp)[0].strip() or (f[3].split(comp) + ["", ""])[1].strip()
            reps = [r for r in f[5].split(rep) if r.strip()]
            for r in reps:
                parts = r.split(comp)
                if vtype == "NM":
                    number = parts[0].strip()
                elif vtype == "SN" and len(parts) >= 2 and not (parts[2:3] and parts[2].strip()):
                    number = parts[1].strip()
                else:
                    continue
                if _NUMBER.match(number) and code:
                    values.append((code, number, len(reps) > 1))
    return ids, values


def send_all(host: str, port: int, files: list[Path], timeout: float = 60.0) -> dict[str, bytes]:
    """Send every file on one MLLP connection, one at a time; returns {file name: ACK bytes}."""
    acks: dict[str, bytes] = {}
    with socket.create_connection((host, port), timeout=timeout) as sock:
        for path in files:
            sock.sendall(VT + path.read_bytes() + FS + CR)
            buf = b""
            while not buf.endswith(FS + CR):
                chunk = sock.recv(65536)
                if not chunk:
                    raise SystemExit(f"connection closed while waiting for the ACK of {path.name}")
                buf += chunk
            acks[path.name] = buf.strip(VT + FS + CR)
    return acks


def ack_code(ack: bytes) -> str:
    """MSA-1 of an ACK."""
    m = re.search(rb"(?:^|\r)MSA\|([A-Z]{2})", ack)
    return m.group(1).decode() if m else "??"


def ack_reasons(ack: bytes) -> list[str]:
    """ERR segments and MSA-3 as short text, for the report."""
    out = []
    for seg in ack.split(b"\r"):
        if seg.startswith((b"ERR|", b"MSA|")):
            out.append(seg.decode("utf-8", "replace")[:160])
    return out


def _found(client: httpx.Client, resource: str, params: dict) -> bool:
    r = client.get(f"/{resource}", params={**params, "_count": "1", "_summary": "count"})
    r.raise_for_status()
    return (r.json().get("total") or 0) > 0


def check_facts(base: str, files: list[Path], missing: list[str] | None = None) -> tuple[int, int, int, int]:
    """(identifiers found, identifiers, values found, values) over all files; not found ones go to `missing`."""
    ids_found = ids_total = vals_found = vals_total = 0
    with httpx.Client(base_url=base, timeout=60) as client:
        for path in files:
            ids, values = facts(path.read_bytes())
            for value in ids:
                ids_total += 1
                found = _found(client, "Patient", {"identifier": value})
                ids_found += found
                if not found and missing is not None:
                    missing.append(f"{path.name}: PID-3 {value}")
            for code, number, repeated in values:
                vals_total += 1
                params = {"code": code}
                found = _found(client, "Observation", {**params, "value-quantity": number}) or _found(
                    client, "Observation", {**params, "component-value-quantity": number}
                )
                vals_found += found
                if not found and missing is not None:
                    missing.append(f"{path.name}: OBX {code} = {number}")
    return ids_found, ids_total, vals_found, vals_total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not start")


def start_servers(db: str) -> tuple[list[subprocess.Popen], int, str]:
    """`lienthong mllp` + `lienthong serve` on the database; returns (processes, MLLP port, FHIR base)."""
    exe = str(Path(sys.executable).with_name("lienthong"))
    mllp_port, http_port = _free_port(), _free_port()
    env_quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    mllp = subprocess.Popen([exe, "mllp", "--db", db, "--port", str(mllp_port)], **env_quiet)
    _wait_port(mllp_port, mllp, "lienthong mllp")
    http = subprocess.Popen([exe, "serve", "--db", db, "--port", str(http_port)], **env_quiet)
    _wait_port(http_port, http, "lienthong serve")
    return [mllp, http], mllp_port, f"http://127.0.0.1:{http_port}/fhir"


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--mllp", help="host:port of a running listener (default: start one)")
    ap.add_argument("--fhir", help="FHIR base URL of a running server (default: start one)")
    ap.add_argument("--db", help="database for the started servers (default: a temporary SQLite file)")
    ap.add_argument(
        "-v", "--verbose", action="store_true", help="also print warnings of AA and the facts not found"
    )
    args = ap.parse_args()
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".hl7", ".txt", ".er7"))
    if not files:
        raise SystemExit(f"no .hl7/.txt/.er7 files in {args.folder}")
    procs: list[subprocess.Popen] = []
    tmp = None
    try:
        if args.mllp and args.fhir:
            host, _, port = args.mllp.rpartition(":")
            mllp_port, base = int(port), args.fhir.rstrip("/")
        else:
            host = "127.0.0.1"
            if not args.db:
                tmp = tempfile.TemporaryDirectory()
            db = args.db or f"sqlite:///{tmp.name}/corpus.db"
            procs, mllp_port, base = start_servers(db)
        acks = send_all(host, mllp_port, files)
        codes = Counter(ack_code(a) for a in acks.values())
        for name, ack in acks.items():
            code = ack_code(ack)
            if code != "AA" or args.verbose:
                reasons = ack_reasons(ack)[1:] if code == "AA" else ack_reasons(ack)
                if reasons or code != "AA":
                    print(f"{code} {name}: " + " | ".join(reasons))
        time.sleep(0.5)  # the listener links patients in the background; reads do not depend on it
        missing: list[str] = []
        ids_found, ids_total, vals_found, vals_total = check_facts(base, files, missing)
        if args.verbose:
            for line in missing:
                print(f"not found: {line}")
        total = len(files)
        print(
            f"messages={total} AA={codes.get('AA', 0)} AE={codes.get('AE', 0)} AR={codes.get('AR', 0)} "
            f"other={total - sum(codes.get(c, 0) for c in ('AA', 'AE', 'AR'))} "
            f"AA%={100 * codes.get('AA', 0) / total:.1f}"
        )
        print(
            f"PID-3 identifiers found {ids_found}/{ids_total}, numeric OBX values found {vals_found}/{vals_total}, "
            f"facts found {100 * (ids_found + vals_found) / max(1, ids_total + vals_total):.1f}%"
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()

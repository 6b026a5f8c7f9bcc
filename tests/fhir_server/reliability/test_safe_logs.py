"""Unhandled errors never put request data in the log (issue 12, item 7): a real uvicorn in a subprocess,
its stderr captured, requests carrying a CCCD that fail in every way we know; the CCCD must not appear
in the log, and uvicorn's own "Exception in ASGI application" (which prints the message) never runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import httpx
import orjson

from tests.processes import free_port

MARKER = "079090001234"  # a CCCD
NAME = "NGUYỄN VĂN AN"

# The deployed app plus one route with a bug that echoes its input in the exception message, the way a
# parser error does: the case the log must survive.
SERVER = textwrap.dedent(
    """
    import logging, sys
    import uvicorn
    from fastapi import APIRouter, Request
    from fhir_server.settings import Settings
    from lienthong.app import create_app

    app = create_app(Settings(database_url=sys.argv[1]))
    bug = APIRouter()

    @bug.post("/bug")
    async def echo_bug(request: Request):
        raise ValueError("could not parse " + (await request.body()).decode())

    app.include_router(bug)
    logging.basicConfig(level=logging.INFO)  # as `lienthong serve` does
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="info", access_log=False)
    """
)


def _hostile_requests(base: str) -> list[tuple[str, str, bytes, dict]]:
    fhir = {"Content-Type": "application/fhir+json"}
    contained = {"resourceType": "Patient", "contained": [{"resourceType": f"{NAME} {MARKER}"}]}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": {"cccd": MARKER},
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    return [
        ("POST", f"{base}/bug", f"{NAME} CCCD {MARKER}".encode(), {}),
        ("POST", f"{base}/fhir/Patient", orjson.dumps(contained), fhir),
        ("POST", f"{base}/fhir", orjson.dumps(bundle), fhir),
        (
            "POST",
            f"{base}/fhir/Patient",
            b'{"resourceType": "Patient", "id": "' + MARKER.encode() + b'\\u0000"}',
            fhir,
        ),
        ("GET", f"{base}/fhir/Patient?identifier={MARKER}%00&value-quantity=1e400", b"", {}),
        ("GET", f"{base}/fhir/Observation?value-quantity={MARKER}e400", b"", {}),
        ("GET", f"{base}/fhir/Patient/{MARKER}/_history/{MARKER}{MARKER}{MARKER}", b"", {}),
        ("GET", f"{base}/ingest/dead-letters?offset={MARKER}{MARKER}{MARKER}", b"", {}),
    ]


def test_a_cccd_in_failing_requests_never_reaches_the_log(db_url, tmp_path):
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, db_url, str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, log_path.read_text()
                time.sleep(0.1)
        statuses = []
        with httpx.Client(timeout=30) as http:
            for method, url, body, headers in _hostile_requests(base):
                statuses.append(http.request(method, url, content=body, headers=headers).status_code)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert statuses[0] == 500 and all(400 <= s < 500 for s in statuses[1:]), statuses
    assert "unhandled error [ValueError]" in text  # the bug is logged: type and frames
    assert "Exception in ASGI application" not in text
    assert MARKER not in text
    assert "NGUY" not in text

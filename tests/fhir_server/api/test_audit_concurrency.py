"""Audit under concurrent load (issue 13): clients racing over a real uvicorn server lose no AuditEvent,
even when the queue is far smaller than the number of requests in flight."""

from __future__ import annotations

import threading

import httpx
import pytest

from lienthong.app import create_app
from tests.fhir_server.api.test_audit import SECRET, bearer
from tests.fhir_server.vn_data import patient

CLIENTS = 8
READS = 15


@pytest.fixture
def app(settings, store):
    """The served app: auth on, audit on, a 4-slot queue in blocking mode (overrides conftest's app)."""
    app = create_app(
        settings.with_(auth_mode="jwt", jwt_secret=SECRET, audit_queue_size=4, audit_block_timeout=30),
        store=store,
    )
    yield app
    app.state.audit_trail.close()


def test_racing_clients_each_access_is_recorded_once(live_server, app, store):
    headers = {**bearer("system/*.* system/AuditEvent.*"), "Content-Type": "application/fhir+json"}
    pid = httpx.post(f"{live_server}/Patient", json=patient("HOÀNG VĂN NAM", "079090009999"), headers=headers)
    pid.raise_for_status()
    ref = f"Patient/{pid.json()['id']}"
    failures: list[int] = []

    def reader() -> None:
        with httpx.Client(headers=headers, timeout=60) as c:
            for _ in range(READS):
                r = c.get(f"{live_server}/{ref}")
                if r.status_code != 200:
                    failures.append(r.status_code)

    threads = [threading.Thread(target=reader) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    trail = app.state.audit_trail
    assert trail.flush()
    assert trail.refused == 0
    assert trail.written == 1 + CLIENTS * READS
    found = httpx.get(
        f"{live_server}/AuditEvent",
        params={"patient": ref, "subtype": "read", "_summary": "count"},
        headers=headers,
    ).json()
    assert found["total"] == CLIENTS * READS

"""Two API processes (`lienthong serve`) on one PostgreSQL database behave as one server: a custom
SearchParameter created through one is used by the other for indexing and search, one person's
visits ingested through different processes are linked, and the same files ingested through both at
once leave every resource at the version one process would give."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from adapters.ids import deterministic_id
from adapters.synth import generate
from tests.fhir_server.search.vn_data import ETHNICITY_URL, ethnicity_param
from tests.processes import drop_pg_database, new_pg_database, serve

PG_ADMIN = os.environ.get("LIENTHONG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def two_servers(pg_session_url, tmp_path) -> Iterator[tuple[str, str, str]]:
    """(database URL, base of process A, base of process B)."""
    if pg_session_url is None:
        pytest.skip("PostgreSQL not reachable")
    db = new_pg_database(PG_ADMIN, "lienthong_two")
    a = serve(db, tmp_path, "a")
    b = serve(db, tmp_path, "b")
    try:
        yield db, a.base, b.base
    finally:
        a.stop()
        b.stop()
        drop_pg_database(db)


def _patient(pid: str, ethnic_code: str) -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"text": "LÒ VĂN PÁO", "family": "LÒ", "given": ["VĂN", "PÁO"]}],
        "extension": [{"url": ETHNICITY_URL, "valueCoding": {"code": ethnic_code}}],
    }


def test_a_search_parameter_created_on_one_process_indexes_writes_on_the_other(two_servers):
    _db, a, b = two_servers
    assert httpx.put(
        f"{a}/SearchParameter/vn-ethnicity", json=ethnicity_param(), headers=FHIR
    ).status_code in (200, 201)
    time.sleep(1.5)  # each process looks at the parameters' version row at most once a second
    assert httpx.put(f"{b}/Patient/thai-1", json=_patient("thai-1", "03"), headers=FHIR).status_code == 201
    found = httpx.get(f"{a}/Patient", params={"ethnicity": "03"}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["thai-1"]
    assert httpx.get(f"{b}/Patient", params={"ethnicity": "03"}).json()["total"] == 1


def test_one_persons_visits_ingested_through_two_processes_are_linked(two_servers):
    _db, a, b = two_servers
    data = generate(hospitals=3, visits=60, seed=3)
    by_person: dict[str, set[str]] = {}
    for v in data.visits:
        by_person.setdefault(v.person_id, set()).add(v.facility)
    person = next(p for p, fac in by_person.items() if len(fac) >= 2)
    visits = [v for v in data.visits if v.person_id == person]
    first = next(v for v in visits if v.facility == visits[0].facility)
    second = next(v for v in visits if v.facility != first.facility)
    assert httpx.post(f"{a.rsplit('/fhir', 1)[0]}/ingest/qd130", content=first.xml).status_code == 200
    assert httpx.post(f"{b.rsplit('/fhir', 1)[0]}/ingest/qd130", content=second.xml).status_code == 200
    pid = deterministic_id("Patient", first.facility, first.ma_bn)
    bundle = httpx.get(f"{a}/Patient/{pid}/$everything", params={"_type": "Patient"}).json()
    ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert deterministic_id("Patient", second.facility, second.ma_bn) in ids


def test_the_same_files_through_both_processes_at_once_give_one_process_versions(two_servers, tmp_path):
    from bench.bench_crash import reference_versions, versions

    db, a, b = two_servers
    files = [v.xml for v in generate(hospitals=3, visits=20, seed=9).visits]
    failures: list[int] = []

    def push(base: str) -> None:
        url = f"{base.rsplit('/fhir', 1)[0]}/ingest/qd130"
        for body in files:
            status = httpx.post(url, content=body, timeout=60).status_code
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=push, args=(base,)) for base in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert versions(db) == reference_versions(files, "qd130", tmp_path)

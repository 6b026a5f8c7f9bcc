"""Custom SearchParameters change the registry only after commit, and other processes pick them up."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from fhir_server.interactions import bundles
from fhir_server.search.registry import get_registry
from tests.fhir_server.search.vn_data import resources, transaction


def _nickname_param(code: str) -> dict:
    return {
        "resourceType": "SearchParameter",
        "id": code,
        "url": f"http://example.org/sp/{code}",
        "name": "nickname",
        "status": "active",
        "code": code,
        "description": "Tên thường gọi",
        "base": ["Patient"],
        "type": "string",
        "expression": "Patient.name.where(use='nickname').given",
    }


def _patient_with_nickname() -> dict:
    p3 = next(r for r in resources() if r["id"] == "p3")
    p3["name"].append({"use": "nickname", "given": ["Cường Đô La"]})
    return p3


def test_a_rolled_back_search_parameter_never_reaches_the_registry(store) -> None:
    code = f"nick-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError):
        with store.begin() as tx:
            tx.put(_nickname_param(code), code, "PUT")
            tx.flush()  # written inside the transaction, then rolled back
            raise RuntimeError("abort")
    assert get_registry().get("Patient", code) is None
    bundles.transaction(store, transaction([_nickname_param(code)]))
    assert get_registry().get("Patient", code) is not None


def test_a_deleted_search_parameter_leaves_the_registry(store) -> None:
    code = f"nick-{uuid.uuid4().hex[:8]}"
    bundles.transaction(store, transaction([_nickname_param(code)]))
    assert get_registry().get("Patient", code) is not None
    with store.begin() as tx:
        tx.delete("SearchParameter", code)
    assert get_registry().get("Patient", code) is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(base: str) -> None:
    deadline = time.time() + 30
    while True:
        try:
            if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.time() < deadline, "server did not start"
        time.sleep(0.2)


def test_another_process_picks_up_a_new_search_parameter(db_url, store) -> None:
    """A second server process on the same database learns a parameter committed by this one."""
    code = f"nick-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    exe = Path(sys.executable).with_name("lienthong")
    proc = subprocess.Popen(
        [str(exe), "serve", "--db", db_url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/fhir"
    strict = {"Prefer": "handling=strict"}
    try:
        _wait_up(base)
        bundles.transaction(store, transaction([_patient_with_nickname()]))
        before = httpx.get(f"{base}/Patient", params={code: "cuong do"}, headers=strict)
        assert before.status_code == 400  # unknown to the other process (and to this one) so far
        bundles.transaction(store, transaction([_nickname_param(code)]))
        store.reindex("Patient")  # index the resource written before the parameter existed
        deadline = time.time() + 10
        while True:
            found = httpx.get(f"{base}/Patient", params={code: "cuong do"}, headers=strict)
            if found.status_code == 200:
                break
            assert time.time() < deadline, found.text
            time.sleep(0.2)
        assert [e["resource"]["id"] for e in found.json()["entry"]] == ["p3"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)

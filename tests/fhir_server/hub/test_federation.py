"""A clinician asks the hub about one person; the hub asks every hospital node at once and answers with
one Bundle: entries labelled by node, the person's three records folded into one Patient, and nodes
that were slow, down or refused named in an OperationOutcome entry."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from fhir_server.hub.merge import ORIGIN_SYSTEM
from tests.fhir_server.hub import hospitals
from tests.fhir_server.hub.conftest import hub_config, load, run_hub
from tests.processes import serve

AN = f"{hospitals.CCCD}|{hospitals.AN_CCCD}"


def _origins(entry: dict) -> set[str]:
    return {t["code"] for t in entry["resource"]["meta"].get("tag", []) if t["system"] == ORIGIN_SYSTEM}


def _outcomes(bundle: dict) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e.get("search", {}).get("mode") == "outcome"]


def _resources(bundle: dict, res_type: str) -> list[dict]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == res_type]


def test_a_cccd_search_answers_one_patient_for_the_person_seen_at_three_hospitals(hub):
    bundle = httpx.get(f"{hub}/Patient", params={"identifier": AN}, timeout=10).json()
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 1
    (patient,) = _resources(bundle, "Patient")
    assert _origins(patient) == {"bv-cho-ray"}  # the first node in the config keeps the entry
    others = {link["other"]["display"]: link["other"]["reference"] for link in patient["resource"]["link"]}
    assert set(others) == {"bv-bach-mai", "bv-hue"}
    assert others["bv-hue"].endswith(f"/Patient/{hospitals.patient_id('bv-hue')}")
    assert all(link["type"] == "seealso" for link in patient["resource"]["link"])
    assert _outcomes(bundle) == []


def test_every_entry_names_its_node_and_has_an_absolute_url_on_it(nodes, hub):
    bundle = httpx.get(f"{hub}/Patient/$everything", params={"identifier": AN}, timeout=10).json()
    for entry in bundle["entry"]:
        origins = _origins(entry)
        assert origins, entry["fullUrl"]
        bases = {nodes[o].base for o in origins}
        assert any(entry["fullUrl"].startswith(b + "/") for b in bases)
        assert entry["resource"]["meta"]["source"] in bases


def test_everything_by_cccd_gathers_the_record_of_every_hospital(hub):
    bundle = httpx.get(f"{hub}/Patient/$everything", params={"identifier": AN}, timeout=10).json()
    conditions = {
        e["resource"]["code"]["coding"][0]["code"]: _origins(e) for e in _resources(bundle, "Condition")
    }
    assert conditions == {"E11.9": {"bv-cho-ray"}, "I10": {"bv-bach-mai"}, "N18.3": {"bv-hue"}}
    assert len(_resources(bundle, "Encounter")) == 3
    assert len(_resources(bundle, "Patient")) == 1  # three records, one person
    # The same Practitioner on two nodes is one entry that names both.
    (doctor,) = _resources(bundle, "Practitioner")
    assert _origins(doctor) == {"bv-cho-ray", "bv-bach-mai"}
    # Chợ Rẫy's unrelated patient is not part of it.
    assert not any("TRẦN" in str(e["resource"].get("name")) for e in bundle["entry"])


def test_match_by_demographics_finds_the_person_without_an_identifier(hub):
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "resource",
                "resource": {
                    "resourceType": "Patient",
                    "name": [{"family": "Nguyễn", "given": ["Văn", "An"]}],
                    "gender": "male",
                    "birthDate": "1990-05-15",
                },
            }
        ],
    }
    bundle = httpx.post(f"{hub}/Patient/$match", json=params, timeout=10).json()
    patients = _resources(bundle, "Patient")
    assert len(patients) == 1
    assert patients[0]["search"]["score"] > 0.5
    assert {lk["other"]["display"] for lk in patients[0]["resource"]["link"]} == {"bv-bach-mai", "bv-hue"}


def test_a_hung_node_is_named_as_timed_out_and_the_others_still_answer_in_time(nodes):
    base, server = run_hub(hub_config(nodes, timeout=1.5))
    nodes["bv-hue"].pause()  # the process keeps its socket but answers nothing
    try:
        t = time.perf_counter()
        bundle = httpx.get(f"{base}/Patient/$everything", params={"identifier": AN}, timeout=20).json()
        elapsed = time.perf_counter() - t
    finally:
        nodes["bv-hue"].resume()
        server.should_exit = True
    assert elapsed < 4.0
    (outcome,) = _outcomes(bundle)
    (issue,) = outcome["issue"]
    assert issue["code"] == "timeout"
    assert issue["details"]["coding"][0]["code"] == "bv-hue"
    assert "bv-hue" in issue["diagnostics"] and "không trả lời" in issue["diagnostics"]
    codes = {e["resource"]["code"]["coding"][0]["code"] for e in _resources(bundle, "Condition")}
    assert codes == {"E11.9", "I10"}


def test_a_node_killed_during_the_query_is_named_as_down(nodes, tmp_path):
    extra = serve(f"sqlite:///{tmp_path / 'hue2.db'}", tmp_path, "hue2")
    load(extra.base, "bv-hue")
    procs = {"bv-cho-ray": nodes["bv-cho-ray"], "bv-hue-2": extra}
    base, server = run_hub(hub_config(procs, timeout=5.0))
    extra.pause()  # the query reaches it and waits...
    killer = threading.Timer(0.5, extra.kill9)  # ...and the node dies while the hub waits for it
    killer.start()
    try:
        bundle = httpx.get(f"{base}/Patient", params={"identifier": AN}, timeout=20).json()
    finally:
        killer.join()
        server.should_exit = True
        extra.stop()
    (outcome,) = _outcomes(bundle)
    assert [(i["code"], i["details"]["coding"][0]["code"]) for i in outcome["issue"]] == [
        ("transient", "bv-hue-2")
    ]
    assert bundle["total"] == 1 and _origins(_resources(bundle, "Patient")[0]) == {"bv-cho-ray"}


def test_a_node_that_refuses_the_hubs_token_is_named_and_a_valid_token_is_accepted(nodes, tmp_path):
    from jose import jwt

    secret = "bi-mat-cua-benh-vien-hue-0123456789"
    guarded = serve(
        f"sqlite:///{tmp_path / 'guarded.db'}",
        tmp_path,
        "guarded",
        LIENTHONG_AUTH="jwt",
        LIENTHONG_JWT_SECRET=secret,
    )
    token = jwt.encode({"sub": "hub", "scope": "system/*.*", "exp": int(time.time()) + 600}, secret, "HS256")
    httpx.post(
        guarded.base,
        json=hospitals.transaction("bv-hue"),
        headers={"Content-Type": "application/fhir+json", "Authorization": f"Bearer {token}"},
    ).raise_for_status()
    try:
        wrong = {"bv-hue-guarded": {"auth": {"type": "bearer", "token": "not-a-token"}}}
        base, server = run_hub(hub_config({"bv-hue-guarded": guarded}, **wrong))
        bundle = httpx.get(f"{base}/Patient", params={"identifier": AN}, timeout=10).json()
        server.should_exit = True
        (outcome,) = _outcomes(bundle)
        assert outcome["issue"][0]["code"] == "forbidden"
        assert bundle["total"] == 0

        right = {"bv-hue-guarded": {"auth": {"type": "bearer", "token": token}}}
        base, server = run_hub(hub_config({"bv-hue-guarded": guarded}, **right))
        bundle = httpx.get(f"{base}/Patient", params={"identifier": AN}, timeout=10).json()
        server.should_exit = True
        assert bundle["total"] == 1 and _outcomes(bundle) == []
    finally:
        guarded.stop()


def test_everything_without_an_identifier_is_a_400_operation_outcome(hub):
    r = httpx.get(f"{hub}/Patient/$everything", timeout=10)
    assert r.status_code == 400
    assert r.json()["issue"][0]["code"] == "required"


def test_node_status_lists_every_node(hub):
    status = httpx.get(hub.replace("/fhir", "/hub/nodes"), timeout=10).json()
    assert [(s["node"], s["status"]) for s in status] == [
        ("bv-bach-mai", "up"),
        ("bv-cho-ray", "up"),
        ("bv-hue", "up"),
    ]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"nodes": []}, "no nodes"),
        ({"nodes": [{"name": "BV HUE", "base_url": "http://x/fhir"}]}, "lowercase"),
        ({"nodes": [{"name": "a", "base_url": "ftp://x"}]}, "http"),
        ({"nodes": [{"name": "a", "base_url": "http://x"}, {"name": "a", "base_url": "http://y"}]}, "twice"),
        ({"mode": "central", "nodes": [{"name": "a", "base_url": "http://x"}]}, "store"),
        ({"nodes": [{"name": "a", "base_url": "http://x", "auth": {"type": "kerberos"}}]}, "unknown auth"),
    ],
)
def test_a_bad_config_is_refused_with_the_reason(bad, message):
    from fhir_server.hub.config import parse_config

    with pytest.raises(ValueError, match=message):
        parse_config(bad)


def test_the_lienthong_hub_command_serves_the_federation_from_a_config_file(nodes, tmp_path):
    import yaml

    from tests.processes import EXE, Proc, child_env, free_port, wait_http

    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump(hub_config(nodes)), encoding="utf-8")
    port = free_port()
    hub = Proc(
        [EXE, "hub", "--config", str(config), "--port", str(port)],
        child_env(),
        tmp_path / "hub.log",
        port=port,
    )
    hub.start()
    try:
        wait_http(f"{hub.base}/metadata", hub)
        bundle = httpx.get(f"{hub.base}/Patient", params={"identifier": AN}, timeout=10).json()
    finally:
        hub.stop()
    assert bundle["total"] == 1
    assert "federated, 3 node(s)" in hub.output()

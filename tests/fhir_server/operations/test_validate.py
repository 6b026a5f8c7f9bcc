"""[type]/$validate over HTTP on SQLite and PostgreSQL: 200 with an OperationOutcome, nothing stored."""

from __future__ import annotations

from tests.fhir_server.vn_data import patient


def _severities(outcome: dict) -> set[str]:
    return {issue["severity"] for issue in outcome["issue"]}


async def test_a_valid_resource_has_no_error_and_is_not_stored(client):
    r = await client.post("Patient/$validate", json=patient(name="NGUYỄN THỊ LAN"))
    assert r.status_code == 200
    assert r.json()["resourceType"] == "OperationOutcome"
    assert _severities(r.json()) == {"information"}
    assert (await client.get("Patient", params={"_summary": "count"})).json()["total"] == 0


async def test_an_unknown_element_is_an_error_issue_with_200(client):
    r = await client.post("Patient/$validate", json={**patient(), "biDanh": "Lan"})
    assert r.status_code == 200
    assert "error" in _severities(r.json())


async def test_a_bad_code_is_an_error_issue(client):
    r = await client.post("Patient/$validate", json={**patient(), "gender": "nam"})
    assert r.status_code == 200
    assert "error" in _severities(r.json())


async def test_the_resource_may_come_in_parameters(client):
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient()}]}
    r = await client.post("Patient/$validate", json=body)
    assert _severities(r.json()) == {"information"}


async def test_a_resource_of_another_type_is_an_error_issue(client):
    r = await client.post("Observation/$validate", json=patient())
    assert r.status_code == 200
    assert "error" in _severities(r.json())

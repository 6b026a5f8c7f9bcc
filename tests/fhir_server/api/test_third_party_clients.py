"""Real FHIR client libraries (fhirpy async, SMART fhirclient) against the server on a loopback port."""

from __future__ import annotations

from fhirpy import AsyncFHIRClient

from tests.fhir_server.vn_data import observation, patient


async def test_fhirpy_create_read_update_with_version(live_server):
    client = AsyncFHIRClient(live_server, extra_headers={"Accept": "application/fhir+json"})
    pat = client.resource(
        "Patient", **{k: v for k, v in patient(name="PHẠM THỊ DUNG").items() if k != "resourceType"}
    )
    await pat.save()
    assert pat.id and pat["meta"]["versionId"] == "1"
    fetched = await client.reference("Patient", pat.id).to_resource()
    assert fetched["name"][0]["family"] == "PHẠM"
    fetched["gender"] = "female"
    await fetched.save()
    assert fetched["meta"]["versionId"] == "2"
    history = await client.execute(f"Patient/{pat.id}/_history", method="get")
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]


async def test_fhirpy_transaction_bundle(live_server):
    client = AsyncFHIRClient(live_server)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:aa",
                "resource": patient(name="HOÀNG VĂN EM"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {"resource": observation("urn:uuid:aa"), "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    result = await client.execute("", method="post", data=bundle)
    assert result["type"] == "transaction-response"
    obs_id = result["entry"][1]["response"]["location"].split("/")[1]
    obs = await client.reference("Observation", obs_id).to_resource()
    assert obs["subject"]["reference"].startswith("Patient/")


def test_smart_fhirclient_create_and_read(live_server):
    from fhirclient import client as smart_client
    from fhirclient.models.patient import Patient

    smart = smart_client.FHIRClient(settings={"app_id": "lienthong-test", "api_base": live_server + "/"})
    pat = Patient(patient(name="VÕ THỊ GIANG"))
    created = pat.create(smart.server)
    new_id = created["id"]
    fetched = Patient.read(new_id, smart.server)
    assert fetched.name[0].family == "VÕ"
    assert fetched.name[0].given == ["THỊ", "GIANG"]
    assert fetched.meta.versionId == "1"

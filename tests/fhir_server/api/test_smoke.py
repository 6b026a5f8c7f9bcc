"""The server starts on both databases and answers a create + read round trip."""

PATIENT = {
    "resourceType": "Patient",
    "name": [{"text": "NGUYỄN VĂN AN", "family": "NGUYỄN", "given": ["VĂN", "AN"]}],
}


async def test_create_then_read_returns_the_stored_patient(client):
    created = await client.post("Patient", json=PATIENT)
    assert created.status_code == 201
    location = created.headers["location"]
    res_id = created.json()["id"]
    assert location.endswith(f"/Patient/{res_id}/_history/1")
    read = await client.get(f"Patient/{res_id}")
    assert read.status_code == 200
    assert read.json()["name"][0]["family"] == "NGUYỄN"
    assert read.headers["etag"] == 'W/"1"'

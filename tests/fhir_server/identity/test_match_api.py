"""Patient/$match and the review-queue endpoints through the real ASGI app."""

from fhir_server.identity import service

from .conftest import patient, put_all

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


def _params(p: dict, **extra) -> dict:
    params = [{"name": "resource", "resource": p}]
    if "only_certain" in extra:
        params.append({"name": "onlyCertainMatches", "valueBoolean": extra["only_certain"]})
    if "count" in extra:
        params.append({"name": "count", "valueInteger": extra["count"]})
    return {"resourceType": "Parameters", "parameter": params}


async def test_match_returns_graded_searchset(client, store):
    known = patient(
        "01001",
        "BN1",
        "Hoàng Thị Thu Hà",
        "1988-12-03",
        "female",
        cccd="001188012345",
        province="01",
        district="005",
        ward="00160",
    )
    lookalike = patient(
        "01002",
        "BN7",
        "Hoàng Thị Thu Hà",
        "1988-12-03",
        "female",
        province="01",
        district="005",
        ward="00160",
    )
    stranger = patient("01002", "BN8", "Hoàng Văn Hải", "1960-01-15", "male")
    put_all(store, [known, lookalike, stranger])
    service.link_all(store)
    query = {
        "resourceType": "Patient",
        "name": [{"family": "HOANG", "given": ["THI", "THU", "HA"]}],
        "birthDate": "1988-12-03",
        "gender": "female",
        "identifier": [{"system": "http://fhir.hl7.org.vn/core/sid/cccd", "value": "001188012345"}],
    }
    r = await client.post("/Patient/$match", json=_params(query))
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "searchset"
    grades = {e["resource"]["id"]: e["search"]["extension"][0]["valueCode"] for e in bundle["entry"]}
    assert grades[known["id"]] == "certain"
    assert grades[lookalike["id"]] == "probable"
    assert stranger["id"] not in grades
    first = bundle["entry"][0]
    assert first["resource"]["id"] == known["id"] and first["search"]["score"] == 1.0
    assert first["search"]["mode"] == "match" and first["search"]["extension"][0]["url"] == MATCH_GRADE

    only = (await client.post("/Patient/$match", json=_params(query, only_certain=True))).json()
    assert [e["resource"]["id"] for e in only["entry"]] == [known["id"]]
    one = (await client.post("/Patient/$match", json=_params(query, count=1))).json()
    assert len(one["entry"]) == 1


async def test_match_rejects_parameters_without_patient(client):
    r = await client.post("/Patient/$match", json={"resourceType": "Parameters", "parameter": []})
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"


async def test_review_queue_over_http(client, store):
    a = patient("01001", "BN1", "Lê Văn Tâm", "1950", "male", province="01", district="005", ward="00160")
    b = patient("79002", "BN2", "LE VAN TAM", "1950-08-17", None, province="79", district="760", ward="26734")
    put_all(store, [a, b])
    service.link_all(store)
    items = (await client.get("/identity/review")).json()["items"]
    assert len(items) == 1
    r = await client.post(f"/identity/review/{items[0]['review_id']}/accept", headers={"x-reviewer": "bs.an"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    again = await client.post(f"/identity/review/{items[0]['review_id']}/reject")
    assert again.status_code == 409
    links = (await client.get(f"/identity/links/{a['id']}")).json()
    assert links["linked"] == sorted([a["id"], b["id"]]) and links["person"]
    person = await client.get(f"/Person/{links['person']}")
    assert person.status_code == 200 and len(person.json()["link"]) == 2
    r = await client.post(f"/identity/unlink/{b['id']}")
    assert r.json()["unlinked_from"] == [a["id"]]
    assert (await client.get(f"/identity/links/{a['id']}")).json()["linked"] == [a["id"]]

"""Read options: _summary and _elements on read, conditional reads (If-None-Match, If-Modified-Since),
_summary=count on search, and Bundle.link next/previous that a client can follow; SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.fhir_server.vn_data import patient

SUBSETTED = "SUBSETTED"


async def _create(client, **kwargs) -> dict:
    r = await client.post("Patient", json=patient(**kwargs))
    assert r.status_code == 201, r.text
    return r.json()


def _tags(resource: dict) -> set[str]:
    return {t["code"] for t in resource.get("meta", {}).get("tag", [])}


async def test_read_with_elements_keeps_only_those_and_marks_subsetted(client):
    created = await _create(client, name="NGUYỄN THỊ LAN")
    r = await client.get(f"Patient/{created['id']}", params={"_elements": "name,gender"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"resourceType", "id", "meta", "name", "gender"}
    assert body["name"][0]["family"] == "NGUYỄN"
    assert SUBSETTED in _tags(body)


async def test_read_with_summary_true_drops_non_summary_elements(client):
    created = await _create(client)
    body = {**created, "photo": [{"contentType": "image/png", "data": "iVBORw0KGgo="}]}
    await client.put(f"Patient/{created['id']}", json=body)
    r = await client.get(f"Patient/{created['id']}", params={"_summary": "true"})
    assert r.status_code == 200
    summary = r.json()
    assert "photo" not in summary
    assert summary["name"][0]["family"] == "NGUYỄN"
    assert SUBSETTED in _tags(summary)


async def test_read_with_summary_data_drops_the_narrative(client):
    created = await _create(client)
    body = {
        **created,
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Bệnh nhân</div>'},
    }
    await client.put(f"Patient/{created['id']}", json=body)
    r = await client.get(f"Patient/{created['id']}", params={"_summary": "data"})
    assert "text" not in r.json()
    assert r.json()["birthDate"] == "1990-05-15"
    text_only = (await client.get(f"Patient/{created['id']}", params={"_summary": "text"})).json()
    assert "text" in text_only and "address" not in text_only


async def test_read_with_summary_false_is_the_whole_resource(client):
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}", params={"_summary": "false"})
    assert r.json() == created


async def test_read_with_summary_count_is_400(client):
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}", params={"_summary": "count"})
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["_summary"]


async def test_vread_with_elements(client):
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}/_history/1", params={"_elements": "birthDate"})
    assert set(r.json()) == {"resourceType", "id", "meta", "birthDate"}


async def test_if_none_match_with_the_current_etag_is_304(client):
    created = await _create(client)
    url = f"Patient/{created['id']}"
    etag = (await client.get(url)).headers["etag"]
    not_modified = await client.get(url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag


async def test_if_none_match_with_a_bare_version_is_304(client):
    """fhirpy's refresh() sends the versionId as it is (If-None-Match: 1)."""
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}", headers={"If-None-Match": "1"})
    assert r.status_code == 304


async def test_if_none_match_with_an_old_etag_returns_the_resource(client):
    created = await _create(client)
    await client.put(f"Patient/{created['id']}", json={**created, "gender": "female"})
    r = await client.get(f"Patient/{created['id']}", headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 200
    assert r.json()["gender"] == "female"


async def test_if_modified_since_after_the_change_is_304(client):
    created = await _create(client)
    url = f"Patient/{created['id']}"
    last_modified = (await client.get(url)).headers["last-modified"]
    assert (await client.get(url, headers={"If-Modified-Since": last_modified})).status_code == 304
    later = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert (await client.get(url, headers={"If-Modified-Since": later})).status_code == 304


async def test_if_modified_since_before_the_change_returns_the_resource(client):
    created = await _create(client)
    r = await client.get(
        f"Patient/{created['id']}", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert r.status_code == 200
    assert r.json()["id"] == created["id"]


async def test_if_modified_since_that_is_not_a_date_is_ignored(client):
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}", headers={"If-Modified-Since": "yesterday"})
    assert r.status_code == 200


async def test_search_summary_count_returns_only_the_total(client):
    for i in range(3):
        await _create(client, name=f"LÝ VĂN TÂM{i}", cccd=f"07909000100{i}")
    bundle = (await client.get("Patient", params={"_summary": "count"})).json()
    assert bundle["total"] == 3
    assert "entry" not in bundle


async def test_next_and_previous_links_are_absolute_and_can_be_followed(client):
    names = [f"PHAN VĂN SỐ{i}" for i in range(5)]
    for i, name in enumerate(names):
        await _create(client, name=name, cccd=f"07909000200{i}")
    first = (await client.get("Patient", params={"_count": "2", "_sort": "_id"})).json()
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert links["next"].startswith("http://test/fhir/Patient?")
    seen = [e["resource"]["id"] for e in first["entry"]]
    page = first
    while "next" in {link["relation"] for link in page["link"]}:
        url = next(link["url"] for link in page["link"] if link["relation"] == "next")
        page = (await client.get(httpx.URL(url))).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
    assert len(seen) == 5 and len(set(seen)) == 5
    previous = next(link["url"] for link in page["link"] if link["relation"] == "previous")
    back = (await client.get(httpx.URL(previous))).json()
    assert [e["resource"]["id"] for e in back["entry"]] == seen[2:4]

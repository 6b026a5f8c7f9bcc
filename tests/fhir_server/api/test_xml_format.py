"""FHIR XML on request (_format=xml, Accept: application/fhir+xml) and XML bodies; JSON stays the
untouched fast path. SQLite and PostgreSQL."""

from __future__ import annotations

from lxml import etree

from tests.fhir_server.vn_data import patient

NS = {"f": "http://hl7.org/fhir"}
XML = {"Accept": "application/fhir+xml"}
PATIENT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <identifier><system value="http://fhir.hl7.org.vn/core/sid/cccd"/><value value="079090004321"/></identifier>
  <name><family value="ĐẶNG"/><given value="THỊ"/><given value="MAI"/></name>
  <gender value="female"/>
  <birthDate value="1985-02-01"/>
</Patient>""".encode()


async def _create(client) -> dict:
    r = await client.post("Patient", json=patient(name="BÙI VĂN KHÁNH"))
    assert r.status_code == 201, r.text
    return r.json()


async def test_read_as_xml_with_format_parameter(client):
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}", params={"_format": "xml"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+xml")
    root = etree.fromstring(r.content)
    assert root.tag == "{http://hl7.org/fhir}Patient"
    assert root.find("f:name/f:family", NS).get("value") == "BÙI"
    assert root.find("f:id", NS).get("value") == created["id"]
    assert r.headers["etag"] == 'W/"1"'


async def test_search_as_xml_with_accept_header(client):
    await _create(client)
    r = await client.get("Patient", headers=XML)
    assert r.status_code == 200
    root = etree.fromstring(r.content)
    assert root.tag == "{http://hl7.org/fhir}Bundle"
    assert root.find("f:total", NS).get("value") == "1"
    assert root.find("f:entry/f:resource/f:Patient/f:gender", NS).get("value") == "male"


async def test_create_from_an_xml_body(client):
    r = await client.post("Patient", content=PATIENT_XML, headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"][0] == {"family": "ĐẶNG", "given": ["THỊ", "MAI"]}
    assert created["birthDate"] == "1985-02-01"


async def test_xml_in_xml_out(client):
    r = await client.post(
        "Patient", content=PATIENT_XML, headers={"Content-Type": "application/fhir+xml", **XML}
    )
    assert r.status_code == 201
    assert etree.fromstring(r.content).find("f:gender", NS).get("value") == "female"


async def test_errors_come_back_as_xml_operation_outcome(client):
    r = await client.get("Patient/khong-co", headers=XML)
    assert r.status_code == 404
    root = etree.fromstring(r.content)
    assert root.tag == "{http://hl7.org/fhir}OperationOutcome"


async def test_malformed_xml_body_is_400(client):
    r = await client.post(
        "Patient", content=b"<Patient xmlns=", headers={"Content-Type": "application/fhir+xml"}
    )
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_xml_outside_the_fhir_namespace_is_400(client):
    r = await client.post("Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 400


async def test_external_entities_are_not_expanded(client):
    body = b"""<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&x;"/></name></Patient>"""
    r = await client.post("Patient", content=body, headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code in (201, 400)
    assert "root:" not in r.text


async def test_json_stays_the_stored_bytes_untouched(client, store):
    """The fast path: a JSON read is the stored bytes as they are, nothing converted."""
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}")
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert r.content == bytes(store.read("Patient", created["id"]).content)


async def test_json_preferred_when_listed_first(client):
    created = await _create(client)
    r = await client.get(
        f"Patient/{created['id']}", headers={"Accept": "application/fhir+json, application/fhir+xml"}
    )
    assert r.headers["content-type"].startswith("application/fhir+json")


async def test_unsupported_format_is_406(client):
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}", params={"_format": "text/turtle"})
    assert r.status_code == 406

"""Message -> FHIR transaction Bundle, field by field, validated with the fhir.resources R4B models."""

from __future__ import annotations

import pytest
from fhir.resources.R4B import get_fhir_model_class

from adapters.hl7v2.plugin import Hl7v2Adapter
from adapters.ids import deterministic_id
from mappings import profile_set
from tests.adapters.hl7v2.samples import (
    ADT_A01,
    ADT_A03,
    ADT_A04,
    ADT_A08,
    ADT_A11,
    ADT_A40,
    ALL_GOOD,
    OML_O21,
    ORM_O01,
    ORU_R01,
    PID_AN,
    PV1_IN,
    VXU_V04,
    msg,
    msh,
)

SYS = profile_set("hl7vn")["identifier_systems"]
AD = Hl7v2Adapter()


def bundle_of(raw: bytes, **options) -> dict:
    parsed = AD.parse(raw)
    assert not parsed.errors and len(parsed.records) == 1
    mapped = AD.to_fhir(parsed.records[0], options)
    assert not mapped.errors, mapped.errors
    return mapped.bundle


def resources(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def errors_of(raw: bytes, **options) -> list:
    parsed = AD.parse(raw)
    if parsed.errors:
        return parsed.errors
    return AD.to_fhir(parsed.records[0], options).errors


@pytest.mark.parametrize("name", sorted(ALL_GOOD))
def test_every_bundle_validates_with_r4b_models(name):
    bundle = bundle_of(ALL_GOOD[name], hl7apy_validate=True)
    get_fhir_model_class("Bundle").model_validate(bundle)
    for entry in bundle["entry"]:
        res = entry["resource"]
        get_fhir_model_class(res["resourceType"]).model_validate(res)
        assert entry["request"] == {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}
    assert bundle["type"] == "transaction"
    assert resources(bundle, "Provenance"), "every message records its source"


def test_adt_a01_patient_fields():
    b = bundle_of(ADT_A01)
    [pat] = resources(b, "Patient")
    assert pat["id"] == deterministic_id("Patient", "01929", "BN000123")
    ids = {i["system"]: i for i in pat["identifier"]}
    assert ids[f"{SYS['mrn']}/01929"]["value"] == "BN000123"
    assert ids[SYS["cccd"]]["value"] == "001080012345"
    assert ids[SYS["cccd"]]["type"]["coding"][0]["code"] == "NI"
    assert ids[SYS["bhyt"]]["value"] == "HN4010120012345"
    assert ids[SYS["bhyt"]]["period"] == {"start": "2024-01-01", "end": "2024-12-31"}
    assert pat["name"] == [
        {"use": "official", "text": "NGUYỄN VĂN AN", "family": "NGUYỄN", "given": ["VĂN", "AN"]}
    ]
    assert pat["gender"] == "male" and pat["birthDate"] == "1980-05-12"
    assert pat["telecom"] == [{"system": "phone", "value": "0912345678", "use": "home"}]
    addr = pat["address"][0]
    assert addr["text"] == "12 Phố Huế, Phường Hàng Bài, Quận Hoàn Kiếm, Hà Nội, VN"
    assert addr["district"] == "Quận Hoàn Kiếm" and addr["state"] == "Hà Nội" and addr["use"] == "home"
    eth = [e for e in pat["extension"] if e["url"].endswith("vn-ext-ethnicity")][0]
    assert eth["valueCodeableConcept"]["coding"][0]["code"] == "01"
    nat = [e for e in pat["extension"] if e["url"].endswith("patient-nationality")][0]
    assert nat["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "VN"
    [org] = resources(b, "Organization")
    assert {k: org["identifier"][0][k] for k in ("system", "value")} == {
        "system": SYS["facility"],
        "value": "01929",
    }
    assert org["name"] == "Bệnh viện Bạch Mai"
    assert pat["managingOrganization"]["reference"] == f"Organization/{org['id']}"


def test_adt_a01_encounter_fields():
    b = bundle_of(ADT_A01)
    [enc] = resources(b, "Encounter")
    [pat] = resources(b, "Patient")
    [doc] = resources(b, "Practitioner")
    assert enc["id"] == deterministic_id("Encounter", "01929", "visit", "VN2024000123")
    assert enc["status"] == "in-progress"
    assert enc["class"]["code"] == "IMP"
    assert enc["identifier"][0]["value"] == "VN2024000123"
    assert enc["identifier"][0]["system"] == f"{SYS['episode']}/01929"
    assert enc["period"] == {"start": "2024-01-15T08:00:00+07:00"}
    assert enc["subject"]["reference"] == f"Patient/{pat['id']}"
    assert enc["serviceType"]["coding"][0]["code"] == "K01"
    assert enc["serviceType"]["text"] == "Khoa Nội tổng hợp"
    assert enc["participant"][0]["individual"]["reference"] == f"Practitioner/{doc['id']}"
    assert enc["participant"][0]["type"][0]["coding"][0]["code"] == "ATND"
    assert doc["name"][0]["text"] == "TRẦN THỊ BÌNH" and doc["name"][0]["family"] == "TRẦN"
    assert enc["location"][0]["location"]["display"] == "K01 / P101 / G1 / BV_BACHMAI"


def test_z_segment_kept_out_of_mapping_but_message_is_accepted():
    b = bundle_of(ADT_A01)
    assert "nội dung riêng" not in str(b)


@pytest.mark.parametrize(
    "raw,status",
    [(ADT_A04, "arrived"), (ADT_A08, "in-progress"), (ADT_A03, "finished"), (ADT_A11, "cancelled")],
)
def test_trigger_sets_encounter_status(raw, status):
    [enc] = resources(bundle_of(raw), "Encounter")
    assert enc["status"] == status


def test_a03_discharge_period_and_disposition():
    [enc] = resources(bundle_of(ADT_A03), "Encounter")
    assert enc["period"] == {"start": "2024-01-15T08:00:00+07:00", "end": "2024-01-20T15:00:00+07:00"}
    assert enc["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] == "01"
    assert enc["location"][0]["status"] == "completed"


def test_a04_outpatient_full_name_in_one_component_is_split_family_first():
    b = bundle_of(ADT_A04)
    [pat] = resources(b, "Patient")
    assert pat["name"][0] == {
        "use": "official",
        "text": "TRẦN THỊ HỒNG NHUNG",
        "family": "TRẦN",
        "given": ["THỊ", "HỒNG", "NHUNG"],
    }
    assert pat["gender"] == "female"
    [enc] = resources(b, "Encounter")
    assert enc["class"]["code"] == "AMB"


def test_a08_update_same_ids_as_a01():
    a01, a08 = bundle_of(ADT_A01), bundle_of(ADT_A08)
    assert resources(a01, "Patient")[0]["id"] == resources(a08, "Patient")[0]["id"]
    assert resources(a01, "Encounter")[0]["id"] == resources(a08, "Encounter")[0]["id"]
    assert resources(a08, "Patient")[0]["telecom"][0]["value"] == "0987654321"


def test_a40_merge_links_both_patients():
    b = bundle_of(ADT_A40)
    survivor, old = resources(b, "Patient")
    assert survivor["id"] == deterministic_id("Patient", "01929", "BN000123")
    assert old["id"] == deterministic_id("Patient", "01929", "BN009999")
    assert survivor["active"] is True and old["active"] is False
    assert survivor["link"] == [{"other": {"reference": f"Patient/{old['id']}"}, "type": "replaces"}]
    assert old["link"] == [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}]
    assert old["identifier"][0]["use"] == "old" and old["identifier"][0]["value"] == "BN009999"
    assert old["name"][0]["text"] == "NGUYEN VAN AN"
    assert any(i["value"] == "BN009999" and i["use"] == "old" for i in survivor["identifier"])


def test_oru_observations_by_value_type():
    b = bundle_of(ORU_R01)
    obs = {o["code"]["coding"][0]["code"]: o for o in resources(b, "Observation")}
    [rep] = resources(b, "DiagnosticReport")
    [pat] = resources(b, "Patient")
    # Results point at the visit but never rewrite it (ADT owns the Encounter).
    assert resources(b, "Encounter") == []
    enc = {"id": deterministic_id("Encounter", "01929", "visit", "VN2024000123")}
    hb = obs["718-7"]
    assert hb["valueQuantity"] == {
        "value": 135,
        "unit": "g/L",
        "system": "http://unitsofmeasure.org",
        "code": "g/L",
    }
    assert hb["referenceRange"][0]["low"]["value"] == 120 and hb["referenceRange"][0]["high"]["value"] == 160
    assert hb["interpretation"][0]["coding"][0]["code"] == "N"
    assert hb["effectiveDateTime"] == "2024-01-15T09:30:00+07:00"
    assert hb["status"] == "final" and hb["category"][0]["coding"][0]["code"] == "laboratory"
    assert (
        hb["subject"]["reference"] == f"Patient/{pat['id']}"
        and hb["encounter"]["reference"] == f"Encounter/{enc['id']}"
    )
    wbc = obs["6690-2"]
    assert wbc["valueQuantity"]["value"] == 12.5 and wbc["interpretation"][0]["coding"][0]["code"] == "H"
    assert wbc["code"]["coding"][0]["display"] == "Bạch cầu"
    assert wbc["effectiveDateTime"] == "2024-01-15T08:30:00+07:00"  # OBX-14 empty -> OBR-7
    assert obs["8251-1"]["valueString"] == "Mẫu máu hơi đục| cần lấy lại"
    blood = obs["882-1"]["valueCodeableConcept"]["coding"][0]
    assert blood == {
        "system": "http://snomed.info/sct",
        "code": "278149003",
        "display": "Nhóm máu A Rh dương",
    }
    assert (
        obs["2160-0"]["valueQuantity"]["comparator"] == "<" and obs["2160-0"]["valueQuantity"]["value"] == 0.5
    )
    assert obs["11502-2"]["valueString"] == "Thiếu máu nhẹ\nTheo dõi thêm"
    assert obs["11502-2"]["status"] == "preliminary"
    assert rep["status"] == "final" and rep["code"]["coding"][0]["code"] == "58410-2"
    assert {i["value"] for i in rep["identifier"]} == {"CD0001", "XN0001"}
    assert [r["reference"] for r in rep["result"]] == [
        f"Observation/{o['id']}" for o in resources(b, "Observation")
    ]
    assert rep["id"] == deterministic_id("DiagnosticReport", "01929", "obr", "FILL:XN0001")


def test_oru_sn_range_and_ratio():
    raw = msg(
        msh("ORU^R01^ORU_R01", "SN1"),
        PID_AN,
        "OBR|1||XN9|1-1^Test^LN",
        "OBX|1|SN|a^A^LN||^10^-^20|mg^mg^UCUM",
        "OBX|2|SN|b^B^LN||^1^:^128",
    )
    obs = resources(bundle_of(raw), "Observation")
    assert obs[0]["valueRange"]["low"]["value"] == 10 and obs[0]["valueRange"]["high"]["value"] == 20
    assert obs[1]["valueRatio"]["denominator"]["value"] == 128


def test_vxu_immunization_fields():
    b = bundle_of(VXU_V04)
    [imm] = resources(b, "Immunization")
    [pat] = resources(b, "Patient")
    assert imm["status"] == "completed"
    assert imm["vaccineCode"]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/cvx",
        "code": "08",
        "display": "Viêm gan B trẻ em",
    }
    assert imm["occurrenceDateTime"] == "2024-03-01T09:15:00+07:00"
    assert imm["doseQuantity"] == {
        "value": 0.5,
        "unit": "mL",
        "system": "http://unitsofmeasure.org",
        "code": "mL",
    }
    assert imm["lotNumber"] == "LOT2024A" and imm["expirationDate"] == "2025-12-31"
    assert imm["manufacturer"] == {"display": "Sanofi"} and imm["primarySource"] is True
    assert imm["route"]["coding"][0]["code"] == "IM" and imm["site"]["coding"][0]["code"] == "LT"
    assert imm["performer"][0]["function"]["coding"][0]["code"] == "AP"
    assert imm["patient"]["reference"] == f"Patient/{pat['id']}"
    assert imm["identifier"][0]["value"] == "TC0001"


def test_orm_and_oml_service_requests():
    b = bundle_of(ORM_O01)
    [sr] = resources(b, "ServiceRequest")
    assert sr["status"] == "active" and sr["intent"] == "order" and sr["priority"] == "routine"
    assert sr["code"]["coding"][0]["code"] == "24357-6"
    assert sr["authoredOn"] == "2024-01-15T08:45:00+07:00"
    assert sr["occurrenceDateTime"] == "2024-01-15T09:00:00+07:00"
    assert sr["requester"]["reference"].startswith("Practitioner/")
    assert sr["id"] == deterministic_id("ServiceRequest", "01929", "order", "PLAC:CD0002")
    b = bundle_of(OML_O21)
    [sr] = resources(b, "ServiceRequest")
    [spec] = resources(b, "Specimen")
    assert sr["status"] == "active" and sr["specimen"] == [{"reference": f"Specimen/{spec['id']}"}]
    assert spec["type"]["coding"][0]["code"] == "BLD"
    assert spec["collection"]["collectedDateTime"] == "2024-01-15T09:00:00+07:00"


def test_provenance_records_the_source_message():
    b = bundle_of(ADT_A01)
    [prov] = resources(b, "Provenance")
    assert prov["entity"][0]["what"]["identifier"]["value"] == "ADT0001"
    assert prov["recorded"] == "2024-01-15T08:30:00+07:00"
    assert prov["agent"][0]["who"]["display"] == "HIS_VNPT@BV_BACHMAI"
    assert {t["reference"] for t in prov["target"]} == {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in b["entry"]
        if e["resource"] is not prov
    }


def test_timezone_is_configurable_and_explicit_offsets_are_kept():
    [enc] = resources(bundle_of(ADT_A01, tz_offset="+00:00"), "Encounter")
    assert enc["period"]["start"] == "2024-01-15T08:00:00+00:00"
    raw = ADT_A01.replace(b"|20240115080000", b"|202401150800+0800")
    [enc] = resources(bundle_of(raw), "Encounter")
    assert enc["period"]["start"] == "2024-01-15T08:00:00+08:00"


def test_older_versions_and_empty_msh_9_3():
    for version in ("2.3", "2.3.1", "2.4", "2.5.1"):
        raw = ADT_A01.replace(b"|2.5|", f"|{version}|".encode()).replace(b"ADT^A01^ADT_A01", b"ADT^A01")
        assert resources(bundle_of(raw, hl7apy_validate=True), "Patient")


def test_ehealth_profile_set_switches_systems():
    [pat] = resources(bundle_of(ADT_A01, profile_set="ehealth"), "Patient")
    systems = {i["system"] for i in pat["identifier"]}
    assert "http://fhir.ehealth.gov.vn/core/sid/citizen-id" in systems
    assert "http://fhir.ehealth.gov.vn/core/sid/insurance-number" in systems


def _codes(errs) -> list[tuple[str, str]]:
    return [(e.location, e.reason[:8]) for e in errs]


@pytest.mark.parametrize(
    "raw,location,tag",
    [
        (
            ADT_A01.replace(
                b"BN000123^^^BV_BACHMAI^MR~001080012345^^^BCA^NI~HN4010120012345^^^BHXH^SB^^20240101^20241231",
                b"",
            ),
            "PID-3",
            "[AE 101]",
        ),
        (ADT_A01.replace(b"|19800512|", b"|1980-05-12|"), "PID-7", "[AE 102]"),
        (ADT_A01.replace(b"|19800512|", b"|19801312|"), "PID-7", "[AE 102]"),
        (msg(msh("ADT^A01^ADT_A01", "N2"), "EVN|A01", PID_AN), "PV1", "[AE 100]"),
        (msg(msh("ADT^A01^ADT_A01", "N1"), "EVN|A01"), "PID", "[AE 101]"),
        (ORU_R01.replace(b"|NM|718-7", b"|NM|718-7").replace(b"||135|", b"||abc|"), "OBX[1]-5", "[AE 102]"),
        (
            ORU_R01.replace("58410-2^Tổng phân tích tế bào máu ngoại vi^LN".encode(), b""),
            "OBR[1]-4",
            "[AE 101]",
        ),
        (VXU_V04.replace(b"08^Vi\xc3\xaam gan B tr\xe1\xba\xbb em^CVX", b""), "RXA[1]-5", "[AE 101]"),
        (ADT_A40.replace(b"MRG|BN009999", b"MRG|BN000123"), "MRG[1]-1", "[AE 205]"),
        (ADT_A01.replace(b"|2.5|", b"|2.9|"), "MSH-12", "[AR 203]"),
        (ADT_A01.replace(b"ADT^A01^ADT_A01", b"MFN^M02^MFN_M02"), "MSH-9", "[AR 200]"),
        (ADT_A01.replace(b"ADT^A01^ADT_A01", b"ADT^A99"), "MSH-9", "[AR 201]"),
        (ADT_A01.replace(b"|ADT0001|", b"||"), "MSH-10", "[AR 101]"),
        (b"NOT HL7 AT ALL", "MSH", "[AR 101]"),
    ],
)
def test_bad_content_gives_precise_errors(raw, location, tag):
    errs = errors_of(raw)
    assert len(errs) == 1, errs
    assert errs[0].location == location and errs[0].reason.startswith(tag), _codes(errs)


def test_parse_and_map_never_raise_on_garbage():
    for raw in (
        b"",
        b"\x00" * 50,
        b"MSH",
        b"MSH|^~\\&|" + b"\xff" * 100,
        bytes(range(256)),
        ADT_A01[:150],
        ORU_R01.replace(b"OBX|", b"OBX|\xff|"),
    ):
        errs = errors_of(raw)
        assert errs and all(e.reason.startswith(("[AR", "[AE")) for e in errs)


def test_sniff():
    assert AD.sniff(ADT_A01) and AD.sniff(b"\x0b" + ADT_A01)
    assert not AD.sniff(b"<?xml version='1.0'?><GIAMDINHHS/>") and not AD.sniff(b"MSHX")


def test_unknown_segment_is_a_warning_not_an_error():
    raw = msg(msh("ADT^A01^ADT_A01", "W1"), PID_AN, PV1_IN, "QQQ|1|x")
    mapped = AD.to_fhir(AD.parse(raw).records[0])
    assert mapped.bundle and mapped.warnings[0].reason == "[W 0] unknown segment QQQ ignored"

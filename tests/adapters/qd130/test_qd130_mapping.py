"""Field-by-field mapping of the shared QĐ130 samples, validated against the FHIR R4B models."""

from __future__ import annotations

from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from adapters.ids import deterministic_id
from adapters.qd130.plugin import Qd130Adapter

SAMPLES = Path("/work/shared/standards/samples")
if not SAMPLES.exists():  # CI clones shared/ beside the repo
    SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "standards" / "samples"


def _bundle(name: str, **options) -> dict:
    ad = Qd130Adapter()
    parsed = ad.parse((SAMPLES / name).read_bytes(), options)
    assert not parsed.errors
    assert len(parsed.records) == 1
    mapped = ad.to_fhir(parsed.records[0], options)
    assert mapped.errors == [], mapped.errors
    return mapped.bundle


def _by_type(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


@pytest.fixture(scope="module")
def outpatient() -> dict:
    return _bundle("qd130-outpatient.xml")


@pytest.fixture(scope="module")
def inpatient() -> dict:
    return _bundle("qd130-inpatient-referral.xml")


@pytest.mark.parametrize("name", ["qd130-outpatient.xml", "qd130-inpatient-referral.xml"])
@pytest.mark.parametrize("profile", ["hl7vn", "ehealth"])
def test_every_resource_is_valid_r4(name, profile):
    bundle = _bundle(name, profile_set=profile)
    assert bundle["type"] == "transaction"
    get_fhir_model_class("Bundle").model_validate(bundle)
    for e in bundle["entry"]:
        res = e["resource"]
        get_fhir_model_class(res["resourceType"]).model_validate(res)
        assert e["request"] == {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}
    keys = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]]
    assert len(keys) == len(set(keys))


def test_references_resolve_inside_bundle(inpatient):
    ids = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in inpatient["entry"]}

    def walk(node):
        if isinstance(node, dict):
            if "reference" in node and isinstance(node["reference"], str):
                yield node["reference"]
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)

    refs = set(walk(inpatient))
    assert refs and refs <= ids


def test_patient_fields(outpatient):
    (pat,) = _by_type(outpatient, "Patient")
    assert pat["id"] == deterministic_id("Patient", "79999", "BN000123")
    assert pat["name"][0] == {
        "use": "official",
        "text": "NGUYỄN VĂN AN",
        "family": "NGUYỄN",
        "given": ["VĂN", "AN"],
    }
    assert pat["gender"] == "male"
    assert pat["birthDate"] == "1990-05-15"
    assert "_birthDate" not in pat  # HHmm 0000 = unknown time
    idents = {i["system"]: i["value"] for i in pat["identifier"]}
    assert idents["http://fhir.hl7.org.vn/core/sid/cccd"] == "079090001234"
    assert idents["http://fhir.hl7.org.vn/core/sid/mrn/79999"] == "BN000123"
    assert idents["http://fhir.hl7.org.vn/core/sid/bhyt"] == "DN4797912345678"
    assert pat["telecom"] == [{"system": "phone", "value": "0900000001"}]
    addr = pat["address"][0]
    assert addr["text"].startswith("Số 12 đường Lê Lợi")
    codes = {x["url"].rsplit("/", 1)[1]: x["valueCoding"]["code"] for x in addr["extension"]}
    # old codes as sent (Lienthong extensions), new codes in the guide's extensions (QĐ 19/2025)
    assert codes == {
        "vn-ext-province": "79",
        "vn-ext-ward": "26740",
        "address-old-province": "79",
        "address-old-district": "760",
        "address-old-ward": "26740",
    }
    assert (addr["city"], addr["district"], addr["state"]) == (
        "Phường Bến Nghé",
        "Quận 1",
        "Thành phố Hồ Chí Minh",
    )
    eth = next(x for x in pat["extension"] if x["url"].endswith("vn-ext-ethnicity"))
    assert eth["valueCodeableConcept"]["coding"][0]["code"] == "01"


def test_ehealth_profile_set_switches_systems():
    bundle = _bundle("qd130-outpatient.xml", profile_set="ehealth")
    (pat,) = _by_type(bundle, "Patient")
    systems = {i["system"] for i in pat["identifier"]}
    assert "http://fhir.ehealth.gov.vn/core/sid/citizen-id" in systems
    assert pat["meta"]["profile"] == ["http://fhir.ehealth.gov.vn/core/StructureDefinition/vn-core-patient"]
    adm = next(
        x for x in pat["address"][0]["extension"] if x["url"].endswith("extension-administrative-address")
    )
    assert {s["url"] for s in adm["extension"]} == {"state", "district", "ward"}


def test_coverage_fields(outpatient):
    (cov,) = _by_type(outpatient, "Coverage")
    assert cov["subscriberId"] == "DN4797912345678"
    assert cov["period"] == {"start": "2024-01-01", "end": "2024-12-31"}
    assert cov["beneficiary"]["reference"].startswith("Patient/")
    assert [c["value"] for c in cov["class"]] == ["DN", "4"]
    dkbd = next(x for x in cov["extension"] if x["url"].endswith("qd130-ma-dkbd"))
    assert dkbd["valueIdentifier"]["value"] == "79999"


def test_encounter_outpatient(outpatient):
    (enc,) = _by_type(outpatient, "Encounter")
    assert enc["id"] == deterministic_id("Encounter", "79999", "79999_2024_03_BN000123_KB01")
    assert enc["class"]["code"] == "AMB"
    assert enc["type"][0]["coding"][0]["code"] == "01"
    assert enc["period"] == {"start": "2024-03-15T08:00:00+07:00", "end": "2024-03-15T09:50:00+07:00"}
    assert enc["status"] == "finished"
    assert enc["reasonCode"][0]["text"] == "Sốt, đau họng 2 ngày"
    disp = enc["hospitalization"]["dischargeDisposition"]["coding"]
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
        "code": "home",
        "display": "Home",
    } in disp
    uses = [(d["use"]["coding"][0]["code"], d["rank"]) for d in enc["diagnosis"]]
    assert uses == [("DD", 1), ("CM", 2), ("AD", 3)]
    outcome = next(x for x in enc["extension"] if x["url"].endswith("qd130-ket-qua-dtri"))
    assert outcome["valueCodeableConcept"]["coding"][0]["code"] == "2"
    assert enc["identifier"][1]["value"] == "KB2403150001"


def test_conditions(outpatient):
    conds = _by_type(outpatient, "Condition")
    codes = [c["code"].get("coding", [{}])[0].get("code") for c in conds]
    assert codes == ["J00", "J30.4", None]
    assert conds[0]["code"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icd-10"
    assert conds[2]["code"]["text"] == "Viêm họng cấp"


def test_drugs_outpatient_dispense_and_price(outpatient):
    reqs = _by_type(outpatient, "MedicationRequest")
    assert len(reqs) == 2
    mr = reqs[1]
    med = next(
        m
        for m in _by_type(outpatient, "Medication")
        if f"Medication/{m['id']}" == mr["medicationReference"]["reference"]
    )
    assert med["code"]["coding"][0]["code"] == "40.226"
    assert mr["dosageInstruction"][0]["text"] == "1 viên/lần * 1 lần/ngày * 5 ngày [1 viên/ngày]"
    assert mr["dosageInstruction"][0]["route"]["coding"][1]["code"] == "26643006"
    assert mr["dispenseRequest"]["quantity"] == {"value": 5, "unit": "Viên"}
    assert mr["authoredOn"] == "2024-03-15T09:30:00+07:00"
    disp = _by_type(outpatient, "MedicationDispense")
    assert len(disp) == 2 and not _by_type(outpatient, "MedicationAdministration")
    charge = next(
        c
        for c in _by_type(outpatient, "ChargeItem")
        if c["service"][0]["reference"] == f"MedicationDispense/{disp[1]['id']}"
    )
    assert charge["priceOverride"] == {"value": 6002.5, "currency": "VND"}
    cost = {x["url"]: x for x in charge["extension"][0]["extension"]}
    assert cost["DON_GIA"]["valueMoney"]["value"] == 1200.5
    assert cost["T_BHTT"]["valueMoney"]["value"] == 4802
    assert cost["MUC_HUONG"]["valueDecimal"] == 80


def test_lab_results(outpatient):
    obs = [
        o
        for o in _by_type(outpatient, "Observation")
        if o["category"][0]["coding"][0]["code"] == "laboratory"
    ]
    wbc = next(o for o in obs if o["code"]["coding"][1]["code"] == "WBC")
    # LOINC first, the hospital's own analyte code kept beside it
    assert wbc["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "6690-2",
        "display": "Leukocytes [#/volume] in Blood by Automated count",
    }
    assert wbc["code"]["text"] == "Số lượng bạch cầu"
    # G/L (giga per litre) in UCUM, the spelling as written kept in unit
    assert wbc["valueQuantity"] == {
        "value": 11.2,
        "unit": "G/L",
        "system": "http://unitsofmeasure.org",
        "code": "10*9/L",
    }
    assert wbc["effectiveDateTime"] == "2024-03-15T09:00:00+07:00"
    assert wbc["note"] == [{"text": "Tăng nhẹ"}]
    assert wbc["interpretation"][0]["coding"][0]["code"] == "H"  # "Tăng nhẹ" = slightly raised
    hgb = next(o for o in obs if o["code"]["coding"][1]["code"] == "HGB")
    assert hgb["code"]["coding"][0]["code"] == "718-7"
    assert hgb["interpretation"][0]["coding"][0]["code"] == "N"  # "Bình thường"
    (report,) = _by_type(outpatient, "DiagnosticReport")
    assert report["code"]["coding"][0]["code"] == "23.0166.1494"
    assert len(report["result"]) == 2
    (sr,) = _by_type(outpatient, "ServiceRequest")
    assert report["basedOn"] == [{"reference": f"ServiceRequest/{sr['id']}"}]
    weight = next(
        o for o in _by_type(outpatient, "Observation") if o["code"]["coding"][0]["code"] == "29463-7"
    )
    assert weight["valueQuantity"]["value"] == 65.5


def test_inpatient_encounter_and_referral(inpatient):
    (enc,) = _by_type(inpatient, "Encounter")
    assert enc["class"]["code"] == "IMP"
    assert [h["class"]["code"] for h in enc["classHistory"]] == ["AMB", "IMP"]
    assert enc["classHistory"][1]["period"]["start"] == "2024-04-01T10:30:00+07:00"
    assert enc["length"]["value"] == 4
    assert len(enc["location"]) == 2
    dest = enc["hospitalization"]["destination"]["reference"]
    assert dest == "Organization/" + deterministic_id("Organization", "79001")
    (ref,) = [
        s for s in _by_type(inpatient, "ServiceRequest") if s["category"][0]["coding"][0]["code"] == "3457005"
    ]
    assert ref["performer"] == [{"reference": dest}]
    assert ref["identifier"][0]["value"] == "0031/2024/GCT"
    assert ref["identifier"][0]["system"] == "urn:vn:cskcb:79999:giay-chuyen-tuyen"
    assert {c["coding"][0]["code"] for c in ref["reasonCode"]} == {"J15.9", "I10"}
    assert any(n["text"].startswith("Dấu hiệu lâm sàng: Sốt 38.5") for n in ref["note"])


def test_inpatient_drugs_are_administrations(inpatient):
    (ma,) = _by_type(inpatient, "MedicationAdministration")
    assert ma["effectiveDateTime"] == "2024-04-02T08:30:00+07:00"
    assert not _by_type(inpatient, "MedicationDispense")


def test_progress_notes_and_vitals(inpatient):
    notes = [c for c in _by_type(inpatient, "ClinicalImpression") if "code" not in c]  # XML5 notes
    assert len(notes) == 2
    assert notes[1]["note"] == [{"text": "Hội chẩn: Hội chẩn khoa: đề nghị chuyển tuyến trên"}]
    vitals = [
        o
        for o in _by_type(inpatient, "Observation")
        if o["category"][0]["coding"][0]["code"] == "vital-signs"
    ]
    temp = [o for o in vitals if o["code"]["coding"][0]["code"] == "8310-5"]
    assert sorted(o["valueQuantity"]["value"] for o in temp) == [38.5, 39]
    bp = next(o for o in vitals if o["code"]["coding"][0]["code"] == "85354-9")
    assert [c["valueQuantity"]["value"] for c in bp["component"]] == [130, 80]
    assert len(notes[0]["supportingInfo"]) == 5  # M, T, HA, NT, SP (HL is not a vital sign)


def test_discharge_paper_and_appointment(inpatient):
    (comp,) = _by_type(inpatient, "Composition")
    assert comp["title"] == "Giấy ra viện"
    assert comp["date"] == "2024-04-04"
    assert comp["identifier"]["value"] == "LT2024-0007"
    assert [s["title"] for s in comp["section"]] == ["Chẩn đoán", "Phương pháp điều trị"]
    signer = next(p for p in _by_type(inpatient, "Practitioner") if p.get("name"))
    assert signer["name"][0]["family"] == "LÊ"
    (appt,) = _by_type(inpatient, "Appointment")
    assert appt["start"] == "2024-04-18T08:00:00+07:00" and appt["end"] == "2024-04-18T08:30:00+07:00"
    assert appt["identifier"][0]["value"] == "HK2024-0099"
    assert appt["status"] == "booked"


def test_ids_are_deterministic():
    assert _bundle("qd130-inpatient-referral.xml") == _bundle("qd130-inpatient-referral.xml")


def test_code_maps_export_as_valid_conceptmaps():
    from adapters.qd130.conceptmaps import qd130_conceptmap_bundle

    bundle = qd130_conceptmap_bundle()
    names = {e["resource"]["name"] for e in bundle["entry"]}
    assert {"Qd130MaLoaiKcb", "Qd130MaLoaiRv", "Qd130GioiTinh"} <= names
    for e in bundle["entry"]:
        get_fhir_model_class("ConceptMap").model_validate(e["resource"])
    kcb = next(e["resource"] for e in bundle["entry"] if e["resource"]["name"] == "Qd130MaLoaiKcb")
    el = {x["code"]: x["target"][0]["code"] for x in kcb["group"][0]["element"]}
    assert el["03"] == "IMP" and el["01"] == "AMB"


def test_referral_links_sending_and_receiving_hospitals():
    from adapters.synth import generate

    ds = generate(hospitals=3, visits=80, seed=11)
    ad = Qd130Adapter()
    sent = next(v for v in ds.visits if v.referred_to)
    arrived = next(v for v in ds.visits if v.referred_from == sent.facility and v.person_id == sent.person_id)
    b_sent = ad.to_fhir(ad.parse(sent.xml).records[0]).bundle
    b_arr = ad.to_fhir(ad.parse(arrived.xml).records[0]).bundle
    (ref,) = [
        e["resource"]
        for e in b_sent["entry"]
        if e["resource"]["resourceType"] == "ServiceRequest"
        and e["resource"].get("category", [{}])[0].get("coding", [{}])[0].get("code") == "3457005"
    ]
    (enc,) = [e["resource"] for e in b_arr["entry"] if e["resource"]["resourceType"] == "Encounter"]
    assert enc["basedOn"][0]["identifier"] == {
        "system": ref["identifier"][0]["system"],
        "value": ref["identifier"][0]["value"],
    }
    assert enc["hospitalization"]["origin"]["reference"] == "Organization/" + deterministic_id(
        "Organization", sent.facility
    )

"""OBX units as UCUM (the text as sent kept), profiles chosen from content, one Organization per facility
code shared with the QĐ130 adapter (issue 16)."""

from __future__ import annotations

from pathlib import Path

from adapters.facility import organization_id
from adapters.qd130.plugin import Qd130Adapter
from adapters.synth.envelope import build_envelope, read_files
from mappings import profile_set
from tests.adapters.hl7v2.corpus_files import bundle_of, one, resources
from tests.adapters.hl7v2.samples import PID_AN, PV1_IN, msg, msh, seg

UCUM = "http://unitsofmeasure.org"
PROFILE = "http://hl7.org/fhir/StructureDefinition/"
SYS = profile_set("hl7vn")["identifier_systems"]
SAMPLES = Path("/work/shared/standards/samples")
if not SAMPLES.exists():  # CI clones shared/ beside the repo
    SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "standards" / "samples"


def _oru(*obx: str) -> bytes:
    return msg(
        msh("ORU^R01^ORU_R01", "ORU-UCUM-1"),
        PID_AN,
        PV1_IN,
        "ORC|RE|DH001|KQ001",
        "OBR|1|DH001|KQ001|GLU^Glucose^L|||20240115090000|||||||||||||||20240115100000|||F",
        *obx,
    )


def _observations(raw: bytes) -> dict[str, dict]:
    return {o["code"]["coding"][0]["code"]: o for o in resources(bundle_of(raw), "Observation")}


def test_a_vietnamese_unit_spelling_without_a_system_becomes_ucum_and_keeps_its_text():
    obs = _observations(_oru("OBX|1|NM|GLU^Glucose^L||6.2|mmol/l|3.9-6.4||||F"))
    assert obs["GLU"]["valueQuantity"] == {"value": 6.2, "unit": "mmol/l", "system": UCUM, "code": "mmol/L"}
    # The reference range carries the same unit.
    assert obs["GLU"]["referenceRange"][0]["high"] == {
        "value": 6.4,
        "unit": "mmol/l",
        "system": UCUM,
        "code": "mmol/L",
    }


def test_a_local_unit_code_with_a_known_display_is_coded_from_the_display():
    obs = _observations(_oru("OBX|1|NM|WBC^Bạch cầu^L||8.1|BC^G/L^99LOCAL|4-10||||F"))
    assert obs["WBC"]["valueQuantity"] == {"value": 8.1, "unit": "G/L", "system": UCUM, "code": "10*9/L"}


def test_a_unit_nobody_mapped_stays_text_or_in_the_senders_system():
    obs = _observations(
        _oru(
            "OBX|1|NM|XYZ^Chỉ số lạ^L||3|đv tùy ý||||F",
            "OBX|2|NM|ABC^Chỉ số khác^L||4|kU^kilo-đơn vị^99LOCAL|||||F",
        )
    )
    assert obs["XYZ"]["valueQuantity"] == {"value": 3, "unit": "đv tùy ý"}
    q = obs["ABC"]["valueQuantity"]
    assert q["unit"] == "kilo-đơn vị" and q["code"] == "kU" and q["system"] != UCUM


def test_a_declared_ucum_code_is_kept():
    obs = _observations(_oru("OBX|1|NM|2345-7^Glucose^LN||110|mg/dL^mg/dL^UCUM|70-100|H|||F"))
    assert obs["2345-7"]["valueQuantity"] == {"value": 110, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}


def test_lab_results_get_the_guides_lab_profile():
    obs = _observations(_oru("OBX|1|NM|2345-7^Glucose^LN||110|mg/dL^mg/dL^UCUM|70-100|H|||F"))
    assert obs["2345-7"]["meta"]["profile"] == [profile_set("hl7vn")["profiles"]["Observation"]]
    assert obs["2345-7"]["category"][0]["coding"][0]["code"] == "laboratory"


def test_vital_signs_from_a_monitor_get_the_r4_vital_sign_profiles():
    obs = _observations(
        _oru(
            "OBX|1|NM|8867-4^Nhịp tim^LN||88|lần/phút||||F",
            "OBX|2|NM|59408-5^SpO2^LN||97|%||||F",
            "OBX|3|ST|85354-9^Huyết áp^LN||130/85|mmHg||||F",
        )
    )
    hr, spo2, bp = obs["8867-4"], obs["59408-5"], obs["85354-9"]
    assert hr["meta"]["profile"] == [PROFILE + "heartrate"]
    assert hr["category"][0]["coding"][0]["code"] == "vital-signs"
    assert hr["valueQuantity"] == {"value": 88, "unit": "lần/phút", "system": UCUM, "code": "/min"}
    assert spo2["meta"]["profile"] == [PROFILE + "oxygensat"]
    assert bp["meta"]["profile"] == [PROFILE + "bp"]
    assert "valueString" not in bp
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"]) for c in bp["component"]] == [
        ("8480-6", 130),
        ("8462-4", 85),
    ]
    assert all(c["valueQuantity"]["code"] == "mm[Hg]" for c in bp["component"])


def test_a_patient_level_observation_that_is_not_a_vital_sign_gets_no_lab_profile():
    raw = msg(
        msh("ADT^A01^ADT_A01", "ADT-OBX-NOTE"),
        "EVN|A01|20240115083000",
        PID_AN,
        PV1_IN,
        "OBX|1|ST|11331-6^Tiền sử uống rượu^LN||Không uống||||||F",
    )
    obs = one(bundle_of(raw), "Observation")
    assert "category" not in obs and "meta" not in obs


def test_the_v2_organization_is_the_qd130_organization_of_the_same_facility_code():
    # BV_BACHMAI is facility 01929 in identifiers.yaml; a QĐ130 file from 01929 names the same resource.
    v2_org = next(
        o for o in resources(bundle_of(_oru("OBX|1|NM|GLU^Glucose^L||6.2|mmol/l|||||F")), "Organization")
    )
    assert v2_org["id"] == organization_id("01929")
    files = [
        (name, body.replace(b"<MA_CSKCB>79999</MA_CSKCB>", b"<MA_CSKCB>01929</MA_CSKCB>"))
        for name, body in read_files((SAMPLES / "qd130-outpatient.xml").read_bytes())[0]
    ]
    payload = build_envelope("01929", [files])
    ad = Qd130Adapter()
    records = ad.parse(payload).records
    bundle = ad.to_fhir(records[0]).bundle
    qd_ids = {
        e["resource"]["id"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Organization"
        and any(i["value"] == "01929" for i in e["resource"].get("identifier", []))
    }
    assert qd_ids == {v2_org["id"]}
    assert v2_org["identifier"] == [
        {
            "use": "official",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PRN"}]},
            "system": SYS["facility"],
            "value": "01929",
        }
    ]


def test_pd1_primary_facility_points_at_that_facilitys_shared_organization():
    raw = msg(
        msh("ADT^A01^ADT_A01", "ADT-PD1-ORG"),
        "EVN|A01|20240115083000",
        PID_AN,
        seg("PD1", {3: "Trạm Y tế phường Hàng Bài^^^^^^^^^79012"}),
        PV1_IN,
    )
    patient = one(bundle_of(raw), "Patient")
    assert patient["generalPractitioner"][0]["reference"] == f"Organization/{organization_id('79012')}"

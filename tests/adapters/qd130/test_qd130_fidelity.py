"""Nothing from the source dropped, standard codes, VN Core profiles: the QĐ130 mapping, field by field."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from adapters import pipeline
from adapters.qd130.dosage import structured_dosage
from adapters.qd130.lab import interpretation, reference_range
from adapters.qd130.plugin import Qd130Adapter
from adapters.synth import generate
from adapters.synth.envelope import build_envelope, read_files
from fhir_server.bindings import check_required_bindings
from fhir_server.validation import validate
from mappings import MAPPINGS_DIR, profile_set

SAMPLES = Path("/work/shared/standards/samples")
if not SAMPLES.exists():  # CI clones shared/ beside the repo
    SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "standards" / "samples"
AD = Qd130Adapter()
SOURCE = {"name": "qd130-outpatient.xml", "sha256": "ab" * 32}


def _map(payload: bytes, **options) -> tuple[dict | None, list, list]:
    parsed = AD.parse(payload, options)
    rec = parsed.records[0]
    mapped = AD.to_fhir(rec, options)
    return mapped.bundle, mapped.errors, mapped.warnings


def _sample(name: str = "qd130-outpatient.xml", **options) -> dict:
    bundle, errors, _ = _map((SAMPLES / name).read_bytes(), source=SOURCE, **options)
    assert errors == [] and bundle is not None
    return bundle


def _of(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _edited(loai: str, old: bytes, new: bytes) -> bytes:
    files = []
    for name, body in read_files((SAMPLES / "qd130-outpatient.xml").read_bytes())[0]:
        if name == loai:
            assert old in body
            body = body.replace(old, new, 1)
        files.append((name, body))
    return build_envelope("79999", [files])


def test_provenance_names_file_hash_record_hash_vendor_and_adapter_version():
    bundle = _sample()
    (prov,) = _of(bundle, "Provenance")
    targets = {t["reference"] for t in prov["target"]}
    others = {e["request"]["url"] for e in bundle["entry"] if e["resource"]["resourceType"] != "Provenance"}
    assert targets == others
    hashes = [e["what"]["identifier"]["value"] for e in prov["entity"]]
    record = AD.parse((SAMPLES / "qd130-outpatient.xml").read_bytes()).records[0].payload
    assert hashes == [SOURCE["sha256"], hashlib.sha256(record).hexdigest()]
    assert "qd130-outpatient.xml" in prov["entity"][0]["what"]["display"]
    assert prov["extension"][0]["valueString"] == "standard"
    assert prov["agent"][0]["who"]["identifier"]["value"].startswith("qd130@")
    assert prov["recorded"] == "2024-03-15T00:00:00+07:00"  # envelope NGAYLAP: re-sending changes nothing


def test_drug_keeps_registration_number_form_and_strength_once():
    bundle = _sample()
    meds = {m["code"]["coding"][0]["code"]: m for m in _of(bundle, "Medication")}
    para = meds["40.56"]
    assert para["code"]["text"] == "Paracetamol 500mg (thuốc giả lập)"  # not "... 500mg 500mg"
    assert para["identifier"][0]["value"] == "VD-00000-00"
    reg = profile_set("hl7vn")["medication_registration_extension"]
    assert {"url": reg, "valueString": "VD-00000-00"} in para["extension"]
    assert para["form"] == {"text": "Viên nén"}
    assert para["meta"]["profile"] == ["http://fhir.hl7.org.vn/core/StructureDefinition/vn-core-medication"]
    (mr,) = [
        m
        for m in _of(bundle, "MedicationRequest")
        if m["medicationReference"]["reference"].endswith(para["id"])
    ]
    dosage = mr["dosageInstruction"][0]
    assert dosage["text"] == "1 viên/lần * 3 lần/ngày * 5 ngày [3 viên/ngày]"
    assert dosage["timing"]["repeat"]["frequency"] == 3 and dosage["timing"]["repeat"]["periodUnit"] == "d"
    assert dosage["timing"]["repeat"]["boundsDuration"]["code"] == "d"
    assert dosage["doseAndRate"][0]["doseQuantity"] == {"value": 1, "unit": "viên"}


@pytest.mark.parametrize(
    "text, frequency, dose",
    [
        ("2 viên/lần * 2 lần/ngày * 5 ngày [4 viên/ngày]", 2, 2),
        ("1/2 viên/lần x 1 lần/ngày", 1, 0.5),
        ("10 ml/lần * 3 lần/ngày", 3, 10),
    ],
)
def test_dose_text_is_read_into_timing_and_dose(text, frequency, dose):
    out = structured_dosage(text)
    assert out["timing"]["repeat"]["frequency"] == frequency
    assert out["doseAndRate"][0]["doseQuantity"]["value"] == dose


def test_free_text_dose_stays_text_only():
    assert structured_dosage("Uống khi sốt trên 38.5 độ") == {}


def test_claim_carries_xml1_totals_items_and_diagnoses():
    bundle = _sample()
    (claim,) = _of(bundle, "Claim")
    totals = {
        e["url"]: e.get("valueMoney", {}).get("value", e.get("valueInteger"))
        for e in claim["extension"][0]["extension"]
    }
    assert totals["T_TONGCHI_BV"] == 101802.5 and totals["T_BHTT"] == 81442 and totals["T_BNCCT"] == 20360.5
    assert totals["NAM_QT"] == 2024 and totals["THANG_QT"] == 3
    assert claim["total"] == {"value": 101802.5, "currency": "VND"}
    assert len(claim["item"]) == 4  # 2 drugs + 2 services
    assert sum(i["net"]["value"] for i in claim["item"]) == 101802.5
    assert claim["insurance"][0]["coverage"]["reference"].startswith("Coverage/")
    assert len(claim["diagnosis"]) == 2


def test_doctors_advice_and_treatment_method_are_a_readable_clinical_impression():
    bundle = _sample()
    (ci,) = [c for c in _of(bundle, "ClinicalImpression") if c.get("code")]
    assert ci["note"] == [{"text": "Lời dặn của bác sĩ: Uống thuốc theo đơn, tái khám nếu sốt cao"}]
    assert ci["summary"] == "Phương pháp điều trị: Điều trị nội khoa"


def test_each_condition_gets_its_own_name():
    conds = [c for c in _of(_sample(), "Condition") if c["code"].get("coding")]
    assert [c["code"]["text"] for c in conds] == ["Viêm mũi họng cấp", "Viêm mũi dị ứng"]


def test_malformed_icd10_is_a_warning_and_never_stored_as_icd10():
    payload = _edited("XML1", b"<MA_BENH_KT>J30.4</MA_BENH_KT>", b"<MA_BENH_KT>ZZZ.99</MA_BENH_KT>")
    bundle, errors, warnings = _map(payload)
    assert errors == [] and any("ZZZ.99" in w.reason and w.location == "XML1/MA_BENH_KT" for w in warnings)
    codings = [c for cond in _of(bundle, "Condition") for c in cond["code"].get("coding", [])]
    bad = next(c for c in codings if c["code"] == "ZZZ.99")
    assert bad["system"] != "http://hl7.org/fhir/sid/icd-10"


def test_vendor_profile_can_make_unknown_icd10_an_error(tmp_path):
    (tmp_path / "strict.yaml").write_text("name: strictbv\nicd10_unknown: error\n", encoding="utf-8")
    payload = _edited("XML1", b"<MA_BENH_KT>J30.4</MA_BENH_KT>", b"<MA_BENH_KT>ZZZ.99</MA_BENH_KT>")
    bundle, errors, _ = _map(payload, vendor="strictbv", vendor_path=str(tmp_path))
    assert bundle is None and errors[0].location == "XML1/MA_BENH_KT"


def test_the_icd10_list_named_by_lienthong_icd10_path_checks_and_names_codes(tmp_path, monkeypatch):
    # The list knows J00 (the sample's main code) but not J30.4: the main code gets the list's Vietnamese
    # name, the other becomes a warning and an unverified code.
    path = tmp_path / "icd10.csv"
    path.write_text("code,name_vi,name_en\nJ00,Viêm mũi họng cấp [cảm thường],Acute nasopharyngitis\n")
    monkeypatch.setenv("LIENTHONG_ICD10_PATH", str(path))
    bundle, errors, warnings = _map((SAMPLES / "qd130-outpatient.xml").read_bytes())
    assert errors == [] and any("J30.4" in w.reason for w in warnings)
    codings = {c["code"]: c for cond in _of(bundle, "Condition") for c in cond["code"].get("coding", [])}
    assert codings["J00"]["display"] == "Viêm mũi họng cấp [cảm thường]"
    assert codings["J30.4"]["system"] != "http://hl7.org/fhir/sid/icd-10"


def test_blood_pressure_has_systolic_and_diastolic_components():
    bundle = _sample("qd130-inpatient-referral.xml")
    bps = [o for o in _of(bundle, "Observation") if o["code"]["coding"][0]["code"] == "85354-9"]
    assert bps, "the sample's CSST<…HA…> holds a blood pressure"
    for bp in bps:
        codes = [c["code"]["coding"][0]["code"] for c in bp["component"]]
        assert codes == ["8480-6", "8462-4"]
        assert all(c["valueQuantity"]["code"] == "mm[Hg]" for c in bp["component"])
        assert bp["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/bp"]


def test_written_reference_range_and_flag():
    rng = reference_range(["CSBT: 4 - 10"], "G/L")
    assert rng["low"]["value"] == 4 and rng["high"]["code"] == "10*9/L"
    assert interpretation([], 11.2, rng)["coding"][0]["code"] == "H"
    assert interpretation(["Âm tính"], None, None)["coding"][0]["code"] == "NEG"
    assert reference_range(["Bình thường"], None) is None


def _guide_urls() -> set[str]:
    urls = set()
    for path in (MAPPINGS_DIR / "profiles").glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        urls |= set((data.get("profiles") or {}).values())
        urls |= {r["profile"] for r in data.get("profile_rules") or [] if r.get("profile")}
    return urls


@pytest.mark.parametrize("profile", ["hl7vn", "ehealth"])
def test_profiles_come_only_from_the_guide_data_and_cover_the_guided_types(profile):
    ps = profile_set(profile)
    known = _guide_urls()
    for name in ("qd130-outpatient.xml", "qd130-inpatient-referral.xml"):
        bundle = _sample(name, profile_set=profile)
        for e in bundle["entry"]:
            res = e["resource"]
            for url in (res.get("meta") or {}).get("profile", []):
                assert url in known, url  # nothing minted outside the profile-set data
            if res["resourceType"] in ps["profiles"] and res["resourceType"] != "Observation":
                assert res.get("meta", {}).get("profile"), res["resourceType"]


@pytest.mark.parametrize("name", ["qd130-outpatient.xml", "qd130-inpatient-referral.xml"])
def test_samples_pass_r4_required_bindings_and_models(name):
    for e in _sample(name)["entry"]:
        res = e["resource"]
        assert check_required_bindings(res) == [], res["resourceType"]
        validate(res, res["resourceType"])


def test_synthetic_visits_pass_r4_required_bindings_and_models():
    for visit in generate(hospitals=2, visits=30, seed=11).visits:
        bundle, errors, _ = _map(visit.xml)
        assert errors == []
        for e in bundle["entry"]:
            assert check_required_bindings(e["resource"]) == []
            validate(e["resource"], e["resource"]["resourceType"])


def test_ingest_with_validation_on_accepts_every_sample(store, monkeypatch):
    monkeypatch.setenv("LIENTHONG_VALIDATE_INGEST", "true")
    for name in ("qd130-outpatient.xml", "qd130-inpatient-referral.xml"):
        result = pipeline.ingest(store, (SAMPLES / name).read_bytes(), source=name)
        assert result.status == "processed", result.records

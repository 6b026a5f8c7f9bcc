"""Patient-level segments (issue 16): AL1/IAM -> AllergyIntolerance, DG1 -> Condition + Encounter.diagnosis,
PR1 -> Procedure, NK1 -> RelatedPerson / Patient.contact, IN1 -> Coverage, PD1 -> generalPractitioner,
patient-level OBX -> Observation, NTE -> note; Provenance for every record."""

from __future__ import annotations

from mappings import profile_set
from tests.adapters.hl7v2.corpus_files import bundle_of, corpus, one, resources
from tests.adapters.hl7v2.samples import PID_AN, PV1_IN, msg, msh, seg

SYS = profile_set("hl7vn")["identifier_systems"]
A01 = "adt-a01-v2.5-bachmai.hl7"


def test_al1_becomes_an_allergy_with_category_criticality_and_reactions():
    b = bundle_of(A01)
    allergy = one(b, "AllergyIntolerance")
    assert allergy["code"]["text"] == "Penicillin"
    assert allergy["category"] == ["medication"] and allergy["type"] == "allergy"
    assert allergy["criticality"] == "high"
    assert allergy["clinicalStatus"]["coding"][0]["code"] == "active"
    assert allergy["reaction"] == [
        {"manifestation": [{"text": "Phát ban"}, {"text": "Khó thở"}], "severity": "severe"}
    ]
    assert allergy["patient"]["reference"] == f"Patient/{one(b, 'Patient')['id']}"
    assert allergy["onsetDateTime"] == "2020-01-15"


def test_iam_allergy_update_keeps_its_identifier_status_and_note():
    allergy = one(bundle_of("adt-a60-v2.6-allergy.hl7"), "AllergyIntolerance")
    assert allergy["identifier"] == [
        {"system": "urn:lienthong:hl7v2/79012/allergy/VIETTEL_HIS", "value": "DU-0091"}
    ]
    assert allergy["category"] == ["food"] and allergy["code"]["coding"][0]["code"] == "TOM"
    assert allergy["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert allergy["reaction"][0]["severity"] == "moderate"
    assert allergy["recordedDate"] == "2024-06-01"
    assert allergy["note"] == [{"text": "Mẹ bé cho biết phản ứng sau khi ăn tôm lần đầu."}]


def test_iam_delete_action_marks_the_allergy_entered_in_error():
    raw = corpus("adt-a60-v2.6-allergy.hl7").replace(b"|A^Th\xc3\xaam^HL70206|", b"|D^X\xc3\xb3a^HL70206|")
    allergy = one(bundle_of(raw), "AllergyIntolerance")
    assert allergy["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in allergy


def test_dg1_becomes_encounter_diagnoses_with_role_and_rank():
    b = bundle_of(A01)
    enc = one(b, "Encounter")
    conditions = {c["code"]["coding"][0]["code"]: c for c in resources(b, "Condition")}
    assert set(conditions) == {"I10", "E11.9"}
    assert conditions["I10"]["code"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icd-10"
    assert conditions["I10"]["category"][0]["coding"][0]["code"] == "encounter-diagnosis"
    assert conditions["I10"]["encounter"]["reference"] == f"Encounter/{enc['id']}"
    assert [
        (d["condition"]["reference"], d["use"]["coding"][0]["code"], d["rank"]) for d in enc["diagnosis"]
    ] == [
        (f"Condition/{conditions['I10']['id']}", "AD", 1),
        (f"Condition/{conditions['E11.9']['id']}", "AD", 2),
    ]


def test_final_diagnosis_is_the_discharge_diagnosis():
    enc = one(bundle_of("adt-a03-v2.5-discharge.hl7"), "Encounter")
    assert {d["use"]["coding"][0]["code"] for d in enc["diagnosis"]} == {"DD"}


def test_dg1_without_a_visit_is_a_problem_list_item():
    raw = msg(msh("ADT^A31^ADT_A05", "DG1P"), PID_AN, "PV1|1|N", "DG1|1||J45.9^Hen phế quản^I10")
    condition = one(bundle_of(raw), "Condition")
    assert condition["category"][0]["coding"][0]["code"] == "problem-list-item"
    assert condition["clinicalStatus"]["coding"][0]["code"] == "active" and "encounter" not in condition


def test_pr1_becomes_a_procedure_with_period_and_performers():
    b = bundle_of("adt-a03-v2.8-trailing-empties-zsegment.hl7")
    proc = one(b, "Procedure")
    assert proc["status"] == "completed" and proc["code"]["coding"][0]["code"] == "47.09"
    assert proc["performedPeriod"] == {
        "start": "2025-03-21T09:00:00+07:00",
        "end": "2025-03-21T09:45:00+07:00",
    }
    functions = [p["function"]["coding"][0]["code"] for p in proc["performer"]]
    assert functions == ["88189002", "304292004"]  # anesthesiologist (PR1-8), surgeon (PR1-11)
    assert proc["reasonCode"][0]["coding"][0]["code"] == "K35.8"


def test_nk1_person_is_a_related_person_and_an_employer_is_a_patient_contact():
    b = bundle_of(A01)
    spouse = one(b, "RelatedPerson")
    assert spouse["relationship"][0]["coding"][0]["code"] == "SPS"
    assert spouse["name"][0]["text"] == "NGUYỄN THỊ LAN" and spouse["telecom"][0]["value"] == "0912000111"
    employer = seg("NK1", {1: "1", 3: "EMR^Nơi làm việc", 13: "Công ty May 10"})
    raw = msg(msh("ADT^A08^ADT_A01", "NK1E"), PID_AN, PV1_IN, employer)
    b = bundle_of(raw)
    assert resources(b, "RelatedPerson") == []
    assert one(b, "Patient")["contact"] == [
        {
            "relationship": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                            "code": "E",
                            "display": "Employer",
                        }
                    ],
                    "text": "Nơi làm việc",
                }
            ],
            "organization": {"display": "Công ty May 10"},
        }
    ]


def test_in1_with_the_social_insurance_makes_a_bhyt_coverage():
    b = bundle_of(A01)
    cov = one(b, "Coverage")
    assert cov["identifier"] == [{"system": SYS["bhyt"], "value": "HN4010120012345"}]
    assert cov["subscriberId"] == "HN4010120012345"
    assert cov["period"] == {"start": "2025-01-01", "end": "2025-12-31"}
    assert cov["relationship"]["coding"][0]["code"] == "self"
    payor = [o for o in resources(b, "Organization") if o["id"] == cov["payor"][0]["reference"].split("/")[1]]
    assert payor[0]["name"] == "Bảo hiểm xã hội Việt Nam"
    assert cov["beneficiary"]["reference"] == f"Patient/{one(b, 'Patient')['id']}"


def test_pd1_primary_facility_and_doctor():
    pat = one(bundle_of(A01), "Patient")
    facility, doctor = pat["generalPractitioner"]
    assert facility["identifier"] == {"system": SYS["facility"], "value": "01001"}
    assert facility["display"] == "Trạm Y tế phường Hàng Bài"
    assert doctor["reference"].startswith("Practitioner/")


def test_patient_level_obx_become_observations_of_the_visit():
    b = bundle_of(A01)
    enc = one(b, "Encounter")
    obs = {o["code"]["coding"][0]["code"]: o for o in resources(b, "Observation")}
    assert obs["29463-7"]["valueQuantity"] == {
        "value": 62.5,
        "unit": "kg",
        "system": "http://unitsofmeasure.org",
        "code": "kg",
    }
    assert obs["8310-5"]["encounter"]["reference"] == f"Encounter/{enc['id']}"
    # A vital sign sent with ADT is not a lab result: vital-signs category and the R4 profile for its code.
    assert obs["8310-5"]["category"][0]["coding"][0]["code"] == "vital-signs"
    assert obs["8310-5"]["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/bodytemp"]


def test_every_resource_has_provenance_from_the_message():
    b = bundle_of(A01)
    prov = one(b, "Provenance")
    assert {t["reference"] for t in prov["target"]} == {
        f"{r['resourceType']}/{r['id']}" for r in (e["resource"] for e in b["entry"]) if r is not prov
    }
    assert prov["occurredDateTime"] == "2025-03-10T08:15:00+07:00"  # EVN-2 (no EVN-6)
    assert prov["reason"][0]["coding"][0]["code"] == "01"  # EVN-4
    assert prov["agent"][1]["who"] == {
        "display": "LÊ THU HƯƠNG",
        "identifier": {"system": "urn:lienthong:hl7v2/01929/practitioner", "value": "NV012"},
    }

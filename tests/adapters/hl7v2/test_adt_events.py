"""ADT trigger events beyond admit/discharge: transfer, pre-admit, class change, tracking, cancellations,
person add/update/delete, swap, move visit, identifier change, allergy update; missing visit number."""

from __future__ import annotations

import pytest

from mappings import profile_set
from tests.adapters.hl7v2.corpus_files import bundle_of, corpus, mapped, one, ref, resources, warnings
from tests.adapters.hl7v2.samples import PID_AN, msg, msh

SYS = profile_set("hl7vn")["identifier_systems"]


@pytest.mark.parametrize(
    "name,status",
    [
        ("adt-a02-v2.6-transfer.hl7", "in-progress"),
        ("adt-a05-v2.5.1-preadmit.hl7", "planned"),
        ("adt-a06-v2.5-outpatient-to-inpatient.hl7", "in-progress"),
        ("adt-a09-v2.7-departing.hl7", "in-progress"),
        ("adt-a10-v2.7-arriving.hl7", "arrived"),
        ("adt-a11-v2.5-cancel-admit.hl7", "cancelled"),
        ("adt-a12-v2.5-cancel-transfer.hl7", "in-progress"),
        ("adt-a13-v2.8-cancel-discharge.hl7", "in-progress"),
        ("adt-a14-v2.8.1-pending-admit.hl7", "planned"),
        ("adt-a15-v2.8.2-pending-transfer.hl7", "in-progress"),
        ("adt-a16-v2.7.1-pending-discharge.hl7", "in-progress"),
        ("adt-a21-v2.5.hl7", "onleave"),
        ("adt-a23-v2.6.hl7", "entered-in-error"),
        ("adt-a27-v2.8.hl7", "cancelled"),
        ("adt-a38-v2.5.hl7", "cancelled"),
    ],
)
def test_trigger_event_sets_the_encounter_status(name, status):
    assert one(bundle_of(name), "Encounter")["status"] == status


def test_a02_transfer_keeps_the_prior_location_as_completed():
    enc = one(bundle_of("adt-a02-v2.6-transfer.hl7"), "Encounter")
    assert enc["location"] == [
        {"location": {"display": "K05 / P502 / G3"}, "status": "active"},
        {"location": {"display": "K01 / P101 / G1"}, "status": "completed"},
    ]
    assert enc["id"] == ref("Encounter", "01929", "visit", "VV2025000101").split("/")[1]


def test_a13_cancel_discharge_reopens_the_same_visit_without_an_end():
    discharged = one(bundle_of("adt-a03-v2.5-discharge.hl7"), "Encounter")
    reopened = one(bundle_of("adt-a13-v2.8-cancel-discharge.hl7"), "Encounter")
    assert discharged["id"] == reopened["id"] and discharged["status"] == "finished"
    assert "end" not in reopened["period"]


def test_a05_preadmit_is_a_planned_preadmission_with_its_planned_procedure():
    b = bundle_of("adt-a05-v2.5.1-preadmit.hl7")
    enc = one(b, "Encounter")
    assert enc["class"]["code"] == "PRENC" and enc["period"]["start"] == "2025-03-20T07:00:00+07:00"
    assert one(b, "Procedure")["code"]["coding"][0]["code"] == "47.09"


def test_a06_class_change_keeps_the_prior_visit_number_as_old_identifier():
    enc = one(bundle_of("adt-a06-v2.5-outpatient-to-inpatient.hl7"), "Encounter")
    assert enc["class"]["code"] == "IMP"
    assert [(i["value"], i.get("use")) for i in enc["identifier"]] == [
        ("CRV25-00041", "official"),
        ("CRV25-00040", "old"),
    ]


def test_a07_inpatient_to_outpatient_changes_class_of_the_same_visit():
    a06 = one(bundle_of("adt-a06-v2.5-outpatient-to-inpatient.hl7"), "Encounter")
    a07 = one(bundle_of("adt-a07-v2.6-inpatient-to-outpatient.hl7"), "Encounter")
    assert a06["id"] == a07["id"] and a07["class"]["code"] == "AMB"


def test_a17_swap_maps_each_patient_with_their_own_visit():
    b = bundle_of("adt-a17-v2.5-swap-beds.hl7")
    patients = {p["identifier"][0]["value"]: p["id"] for p in resources(b, "Patient")}
    encounters = {e["identifier"][0]["value"]: e for e in resources(b, "Encounter")}
    assert encounters["VV2025000101"]["subject"]["reference"] == f"Patient/{patients['BN000123']}"
    assert encounters["VV2025000303"]["subject"]["reference"] == f"Patient/{patients['BN001357']}"
    assert encounters["VV2025000303"]["location"][0]["location"]["display"] == "K05 / P502 / G3"


def test_a28_adds_the_person_and_next_of_kin_without_a_visit():
    b = bundle_of("adt-a28-v2.5-add-person.hl7")
    pat = one(b, "Patient")
    assert pat["name"][0]["text"] == "ĐỖ MINH QUÂN" and resources(b, "Encounter") == []
    father = one(b, "RelatedPerson")
    assert father["relationship"][0]["coding"][0]["code"] == "FTH"
    assert father["patient"]["reference"] == f"Patient/{pat['id']}"


def test_a29_delete_person_marks_the_patient_inactive():
    pat = one(bundle_of("adt-a29-v2.5-delete-person.hl7"), "Patient")
    assert pat["active"] is False and pat["identifier"][0]["value"] == "PK77099"


def test_a31_primary_facility_points_at_that_hospitals_own_organization():
    pat = one(bundle_of("adt-a31-v2.6-update-person.hl7"), "Patient")
    # PD1-3 carries mã CSKCB 01929: the same Organization that Bạch Mai's own messages write.
    bach_mai = resources(bundle_of("adt-a01-v2.5-bachmai.hl7"), "Organization")[0]
    assert bach_mai["identifier"][0]["value"] == "01929"
    assert pat["generalPractitioner"] == [
        {
            "reference": f"Organization/{bach_mai['id']}",
            "identifier": {"system": SYS["facility"], "value": "01929"},
            "display": "Bệnh viện Bạch Mai",
        }
    ]
    assert pat["maritalStatus"]["coding"][0]["code"] == "M"


def test_a45_moves_the_visit_to_the_patient_in_pid():
    b = bundle_of("adt-a45-v2.5-move-visit.hl7")
    enc = one(b, "Encounter")
    assert enc["id"] == ref("Encounter", "01929", "visit", "VV2025000404").split("/")[1]
    assert enc["subject"]["reference"] == ref("Patient", "01929", "BN001357")


def test_a47_corrected_cccd_keeps_one_patient_with_the_wrong_number_as_old():
    b = bundle_of("adt-a47-v2.6-change-identifier.hl7")
    pat = one(b, "Patient")
    cccd = {i["value"]: i.get("use") for i in pat["identifier"] if i["system"] == SYS["cccd"]}
    assert cccd == {"049301002468": "official", "049301002460": "old"}
    assert "link" not in pat


def test_a47_changed_hospital_number_links_the_old_record():
    raw = corpus("adt-a47-v2.6-change-identifier.hl7").replace(
        b"MRG|049301002460^^^BCA^NI", b"MRG|QN5500098^^^BVDK_QUANGNAM^PI"
    )
    survivor, old = resources(bundle_of(raw), "Patient")
    assert old["active"] is False and old["link"][0]["type"] == "replaced-by"
    assert survivor["link"] == [{"other": {"reference": f"Patient/{old['id']}"}, "type": "replaces"}]


def test_a01_without_visit_number_stores_patient_and_a_derived_encounter():
    result = mapped("adt-a01-v2.3.1-no-visit-number.hl7")
    pat = one(result.bundle, "Patient")
    enc = one(result.bundle, "Encounter")
    assert pat["identifier"][0]["value"] == "PK77002"
    assert enc["id"] == ref("Encounter", "PKDK_ANPHUOC", "derived", "PK77002", "20250307082000").split("/")[1]
    assert "identifier" not in enc and enc["class"]["code"] == "EMER"
    assert any(w.location == "PV1-19" and w.reason.startswith("[W 101]") for w in result.warnings)
    # Deterministic: the same visit sent again (new control id) is the same Encounter.
    again = corpus("adt-a01-v2.3.1-no-visit-number.hl7").replace(b"PK-A01-0002", b"PK-A01-0003")
    assert one(bundle_of(again), "Encounter")["id"] == enc["id"]


def test_without_visit_number_or_admit_time_the_encounter_is_keyed_on_the_message():
    raw = msg(msh("ADT^A04^ADT_A01", "NOVISIT1"), PID_AN, "PV1|1|O")
    enc = one(bundle_of(raw), "Encounter")
    assert enc["id"] == ref("Encounter", "01929", "derived", "BN000123", "msh-10", "NOVISIT1").split("/")[1]
    assert any("MSH-10" in w for w in warnings(raw))


def test_a08_without_pv1_updates_the_patient_with_a_warning():
    result = mapped("adt-a08-v2.4-demographics-only.hl7")
    assert resources(result.bundle, "Encounter") == []
    assert one(result.bundle, "Patient")["address"][0]["line"][0] == "30 Phan Châu Trinh"
    assert [w.location for w in result.warnings] == ["PV1"]


def test_a01_without_pv1_is_a_content_error():
    [err] = mapped(msg(msh("ADT^A01^ADT_A01", "NOPV1"), "EVN|A01", PID_AN)).errors
    assert (err.location, err.reason[:8]) == ("PV1", "[AE 100]")


def test_windows_1258_message_without_msh18_keeps_vietnamese_names():
    pat = one(bundle_of("adt-a04-v2.4-windows1258.hl7"), "Patient")
    assert pat["name"][0]["text"] == "BÙI THÙY LINH"
    assert pat["address"][0]["city"] == "Tam Kỳ"


def test_v2_3_without_structure_and_lf_separators_splits_a_whole_name():
    b = bundle_of("adt-a04-v2.3-outpatient-no-structure.hl7")
    assert one(b, "Patient")["name"][0]["given"] == ["THỊ", "HỒNG", "NHUNG"]
    assert one(b, "Encounter")["status"] == "arrived"
    systolic = [o for o in resources(b, "Observation") if o["code"]["coding"][0]["code"] == "8480-6"]
    assert systolic[0]["valueQuantity"]["value"] == 128

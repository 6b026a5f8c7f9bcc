"""SIU^S12-S26 -> Appointment (re-examination scheduling) and REF^I12-I15 -> ServiceRequest (care transfer)."""

from __future__ import annotations

import pytest

from adapters.facility import organization_id
from mappings import profile_set
from tests.adapters.hl7v2.corpus_files import bundle_of, mapped, one, ref, resources

SYS = profile_set("hl7vn")["identifier_systems"]


def test_s12_books_a_follow_up_appointment():
    b = bundle_of("siu-s12-v2.5-followup.hl7")
    appt = one(b, "Appointment")
    assert appt["status"] == "booked"
    assert appt["appointmentType"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0276",
        "code": "FOLLOWUP",
    }
    assert (appt["start"], appt["end"]) == ("2025-04-10T08:00:00+07:00", "2025-04-10T08:30:00+07:00")
    assert appt["minutesDuration"] == 30
    assert appt["serviceType"][0]["coding"][0]["code"] == "99213"
    assert [p.get("actor", {}).get("display") for p in appt["participant"]][
        2
    ] == "PK05 / Phòng khám Tim mạch 5 / BV_BACHMAI"
    assert appt["participant"][0]["actor"]["reference"] == f"Patient/{one(b, 'Patient')['id']}"
    assert appt["comment"] == "Mang theo sổ khám bệnh và kết quả xét nghiệm cũ."
    assert one(b, "Observation")["valueQuantity"]["value"] == 135


@pytest.mark.parametrize(
    "name,status,participant",
    [
        ("siu-s13-v2.5.1-reschedule.hl7", "booked", "accepted"),
        ("siu-s15-v2.7-cancel.hl7", "cancelled", "declined"),
        ("siu-s16-v2.5-discontinue.hl7", "cancelled", "declined"),
        ("siu-s17-v2.8-delete.hl7", "entered-in-error", "declined"),
        ("siu-s26-v2.5.1-noshow.hl7", "noshow", "declined"),
    ],
)
def test_trigger_and_filler_status_set_the_appointment_status(name, status, participant):
    appt = one(bundle_of(name), "Appointment")
    assert appt["status"] == status
    assert {p["status"] for p in appt["participant"]} == {participant}


def test_reschedule_updates_the_same_appointment():
    booked = one(bundle_of("siu-s12-v2.5-followup.hl7"), "Appointment")
    moved = one(bundle_of("siu-s13-v2.5.1-reschedule.hl7"), "Appointment")
    assert booked["id"] == moved["id"] and moved["start"] == "2025-04-12T09:00:00+07:00"


def test_v2_3_appointment_times_come_from_sch_11():
    appt = one(bundle_of("siu-s12-v2.3.1-old-tq.hl7"), "Appointment")
    assert (appt["start"], appt["end"]) == ("2025-04-15T14:00:00+07:00", "2025-04-15T14:20:00+07:00")
    assert appt["appointmentType"]["coding"][0]["code"] == "ROUTINE"


def test_i12_referral_to_another_hospital():
    b = bundle_of("ref-i12-v2.5-chuyen-tuyen.hl7")
    sr = [s for s in resources(b, "ServiceRequest") if s["category"][0]["coding"][0]["code"] == "3457005"][0]
    assert sr["status"] == "active" and sr["intent"] == "order" and sr["priority"] == "routine"
    assert sr["identifier"][0] == {
        "system": "urn:lienthong:hl7v2/BVDK_QUANGNAM/referral/VIETSENS",
        "value": "CT-2025-0042",
    }
    assert sr["occurrencePeriod"] == {"start": "2025-03-25", "end": "2025-04-08"}
    # Referred to Chợ Rẫy by its mã CSKCB: the Organization that Chợ Rẫy's own messages write.
    assert sr["performer"] == [
        {
            "reference": f"Organization/{organization_id('79012')}",
            "identifier": {"system": SYS["facility"], "value": "79012"},
            "display": "Bệnh viện Chợ Rẫy",
        }
    ]
    assert sr["requester"]["reference"] == ref("Practitioner", "BVDK_QUANGNAM", "BS077")
    assert sr["reasonReference"] == [{"reference": f"Condition/{one(b, 'Condition')['id']}"}]
    assert sr["supportingInfo"] == [{"reference": f"DiagnosticReport/{one(b, 'DiagnosticReport')['id']}"}]
    assert sr["reasonCode"][0]["coding"][0]["code"] == "K35.8"


def test_referral_modify_and_cancel_update_the_same_referral():
    first = one(bundle_of("ref-i12-v2.5-chuyen-tuyen.hl7"), "Condition")
    del first
    i12 = [s for s in resources(bundle_of("ref-i12-v2.5-chuyen-tuyen.hl7"), "ServiceRequest")][-1]
    i13 = one(bundle_of("ref-i13-v2.6-modify.hl7"), "ServiceRequest")
    assert i13["id"] == i12["id"] and i13["priority"] == "stat"
    assert one(bundle_of("ref-i14-v2.7-cancel.hl7"), "ServiceRequest")["status"] == "revoked"


def test_referral_without_an_id_is_kept_with_a_derived_key_and_a_warning():
    result = mapped("ref-i12-v2.8-no-referral-id.hl7")
    sr = one(result.bundle, "ServiceRequest")
    assert sr["performer"][0]["identifier"]["value"] == "01929"
    assert [(w.location, w.reason[:8]) for w in result.warnings] == [("RF1-6", "[W 101] ")]

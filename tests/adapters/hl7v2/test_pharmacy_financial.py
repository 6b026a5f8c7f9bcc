"""Pharmacy (RDE^O11/O25 -> MedicationRequest, RDS^O13 -> MedicationDispense) and financial messages
(DFT^P03/P11 -> ChargeItem, BAR^P01/P02/P05/P06/P12 -> Account, Coverage, Condition, Procedure)."""

from __future__ import annotations

from mappings import profile_set
from tests.adapters.hl7v2.corpus_files import bundle_of, corpus, mapped, one, ref, resources

SYS = profile_set("hl7vn")["identifier_systems"]
THUOC = "http://lienthong.vn/fhir/CodeSystem/qd130/thuoc"


def test_rde_prescription_with_dose_route_timing_and_dispense():
    b = bundle_of("rde-o11-v2.5-prescription.hl7")
    rx = one(b, "MedicationRequest")
    assert rx["status"] == "active" and rx["intent"] == "order"
    assert rx["medicationCodeableConcept"]["coding"][0] == {
        "system": THUOC,
        "code": "40.05.0150",
        "display": "Amlodipin 5mg",
    }
    [dosage] = rx["dosageInstruction"]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 5
    assert dosage["route"]["coding"][0]["code"] == "PO"
    assert dosage["timing"] == {
        "code": {"text": "BID"},
        "repeat": {"boundsPeriod": {"start": "2025-03-10", "end": "2025-03-17"}},
    }
    assert dosage["text"] == "Uống sau ăn sáng; Theo dõi huyết áp"
    assert rx["dispenseRequest"]["quantity"]["value"] == 14
    assert rx["reasonCode"][0]["coding"][0]["code"] == "I10"
    assert rx["requester"]["reference"].startswith("Practitioner/")
    # The weight sent for dosing is an Observation of the visit.
    assert one(b, "Observation")["valueQuantity"]["value"] == 62.5


def test_rde_refill_takes_the_order_timing_tq1_and_refills():
    rx = one(bundle_of("rde-o25-v2.6-refill.hl7"), "MedicationRequest")
    assert rx["dosageInstruction"][0]["timing"]["code"] == {"text": "Q12H"}
    assert rx["dispenseRequest"]["numberOfRepeatsAllowed"] == 2


def test_rds_dispense_points_at_the_prescription_of_the_rde():
    prescription = one(bundle_of("rde-o11-v2.5-prescription.hl7"), "MedicationRequest")
    dispense = one(bundle_of("rds-o13-v2.5.1-dispense.hl7"), "MedicationDispense")
    assert dispense["authorizingPrescription"] == [{"reference": f"MedicationRequest/{prescription['id']}"}]
    assert dispense["status"] == "completed" and dispense["quantity"]["value"] == 14
    assert dispense["whenHandedOver"] == "2025-03-10T14:30:00+07:00"
    assert dispense["note"] == [{"text": "Phát đủ 14 viên"}]


def test_dft_charges_on_the_patient_account_and_payments_left_out_with_a_warning():
    result = mapped("dft-p03-v2.5.1-charges.hl7")
    account = one(result.bundle, "Account")
    assert account["identifier"][0]["value"] == "TK-BM-2025-0101" and account["status"] == "active"
    charges = {c["identifier"][0]["value"]: c for c in resources(result.bundle, "ChargeItem")}
    assert set(charges) == {"GD-0001", "GD-0002"}
    exam = charges["GD-0001"]
    assert exam["status"] == "billable" and exam["priceOverride"] == {"value": 38700, "currency": "VND"}
    assert exam["code"]["coding"][0]["system"] == "http://lienthong.vn/fhir/CodeSystem/qd130/dvkt"
    assert exam["account"] == [{"reference": f"Account/{account['id']}"}]
    assert exam["context"]["reference"] == ref("Encounter", "01929", "visit", "VV2025000101")
    assert [(w.location, w.reason[:5]) for w in result.warnings] == [("FT1[3]-6", "[W 0]")]


def test_dft_p11_maps_charges_procedures_and_diagnoses():
    b = bundle_of("dft-p11-v2.8-expanded.hl7")
    assert one(b, "ChargeItem")["priceOverride"]["value"] == 3500000
    assert one(b, "Procedure")["code"]["coding"][0]["code"] == "47.01"
    assert one(b, "Condition")["code"]["coding"][0]["code"] == "K35.8"


def test_bar_account_status_follows_the_trigger():
    assert one(bundle_of("bar-p01-v2.5-new-account.hl7"), "Account")["status"] == "active"
    assert one(bundle_of("bar-p02-v2.6-purge.hl7"), "Account")["status"] == "inactive"
    assert one(bundle_of("bar-p06-v2.6-end-account.hl7"), "Account")["status"] == "inactive"


def test_bar_p01_references_the_visit_and_records_bhyt_coverage():
    b = bundle_of("bar-p01-v2.5-new-account.hl7")
    assert resources(b, "Encounter") == []  # the visit belongs to ADT; BAR only points at it
    condition = one(b, "Condition")
    assert condition["encounter"]["reference"] == ref("Encounter", "79012", "visit", "CRV25-00031")
    assert one(b, "Coverage")["identifier"] == [{"system": SYS["bhyt"], "value": "HC4797906504321"}]


def test_a41_merge_account_closes_the_prior_account():
    b = bundle_of("adt-a41-v2.5-merge-account.hl7")
    status = {a["identifier"][0]["value"]: a["status"] for a in resources(b, "Account")}
    assert status == {"TK-CR-2025-0031": "active", "TK-CR-2025-0030": "inactive"}


def test_unreadable_charge_amount_is_left_out_with_a_warning():
    raw = corpus("dft-p03-v2.5.1-charges.hl7").replace(b"|38700&VND|38700&VND|", b"|38.700 d|38.700 d|")
    result = mapped(raw)
    exam = [c for c in resources(result.bundle, "ChargeItem") if c["identifier"][0]["value"] == "GD-0001"][0]
    assert "priceOverride" not in exam and exam["quantity"] == {"value": 1}
    assert {(w.location, w.reason[:8]) for w in result.warnings} >= {
        ("FT1[1]-12", "[W 102] "),
        ("FT1[1]-11", "[W 102] "),
    }

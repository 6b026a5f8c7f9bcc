"""Lab results (ORU^R01, OUL^R22-R24) and orders (ORM, OML, OMG): grouping, statuses as data, tolerance."""

from __future__ import annotations

from tests.adapters.hl7v2.corpus_files import bundle_of, corpus, mapped, one, ref, resources
from tests.adapters.hl7v2.samples import ORU_R01, PID_AN, msg, msh, seg


def test_obr25_o_is_registered_and_unknown_obx11_is_unknown_with_a_warning():
    result = mapped("oru-r01-v2.5.1-prelim-unknown-status.hl7")
    assert one(result.bundle, "DiagnosticReport")["status"] == "registered"  # table 0123: O = order received
    statuses = {o["code"]["coding"][0]["code"]: o["status"] for o in resources(result.bundle, "Observation")}
    assert statuses == {"2093-3": "unknown", "2571-8": "unknown", "13457-7": "preliminary"}
    assert [(w.location, w.reason[:8]) for w in result.warnings] == [
        ("OBX[1]-11", "[W 103] "),
        ("OBX[2]-11", "[W 103] "),
    ]


def test_repeated_numeric_value_becomes_components_coded_like_the_observation():
    b = bundle_of("oru-r01-v2.5.1-prelim-unknown-status.hl7")
    ldl = [o for o in resources(b, "Observation") if o["code"]["coding"][0]["code"] == "13457-7"][0]
    assert [c["valueQuantity"]["value"] for c in ldl["component"]] == [3.6, 3.7]
    assert all(c["code"]["coding"][0]["code"] == "13457-7" for c in ldl["component"])


def test_results_of_two_patients_in_one_message_go_to_each_patient():
    b = bundle_of("oru-r01-v2.6-two-patients.hl7")
    patients = {p["identifier"][0]["value"]: f"Patient/{p['id']}" for p in resources(b, "Patient")}
    subjects = {
        r["code"]["coding"][0]["code"]: r["subject"]["reference"] for r in resources(b, "DiagnosticReport")
    }
    assert subjects == {"14749-6": patients["PK77001"], "4548-4": patients["PK77002"]}


def test_oul_r22_specimen_before_obr_and_orc_after_obr():
    b = bundle_of("oul-r22-v2.5.1-specimen.hl7")
    report = one(b, "DiagnosticReport")
    specimen = one(b, "Specimen")
    assert report["specimen"] == [{"reference": f"Specimen/{specimen['id']}"}]
    assert specimen["type"]["coding"][0]["code"] == "BLD"
    assert specimen["receivedTime"] == "2025-03-15T07:00:00+07:00"
    assert {i["value"] for i in report["identifier"]} == {"CD-9001", "XN-9001"}  # ORC after OBR joined it
    assert len(report["result"]) == 2
    # The OBX between SPM and OBR is about the specimen, not a result of the order: patient level.
    volume = [o for o in resources(b, "Observation") if o["code"]["coding"][0]["code"] == "33747-0"][0]
    assert {"reference": f"Observation/{volume['id']}"} not in report["result"] and "category" not in volume


def test_oul_r24_specimen_after_obr_belongs_to_that_order():
    b = bundle_of("oul-r24-v2.8-order-oriented.hl7")
    report = one(b, "DiagnosticReport")
    assert report["specimen"] == [{"reference": f"Specimen/{one(b, 'Specimen')['id']}"}]
    assert one(b, "Observation")["valueQuantity"]["value"] == 142


def test_report_without_order_numbers_is_kept_with_a_derived_key():
    raw = msg(
        msh("ORU^R01^ORU_R01", "NOORDER"),
        PID_AN,
        "OBR|1|||2345-7^Glucose^LN|||20250310083000",
        "OBX|1|NM|2345-7^Glucose^LN||6.1|mmol/L^mmol/L^UCUM||||F",
    )
    result = mapped(raw)
    assert one(result.bundle, "Observation")["valueQuantity"]["value"] == 6.1
    assert result.warnings[0].location == "OBR[1]-3" and result.warnings[0].reason.startswith("[W 101]")
    again = raw.replace(b"NOORDER", b"NOORDER2")
    assert one(bundle_of(again), "DiagnosticReport")["id"] == one(result.bundle, "DiagnosticReport")["id"]


def test_obx_without_identifier_is_skipped_and_the_rest_of_the_report_kept():
    raw = ORU_R01.replace(b"OBX|2|NM|6690-2^B\xe1\xba\xa1ch c\xe1\xba\xa7u^LN|", b"OBX|2|NM||")
    result = mapped(raw)
    assert not result.errors and len(resources(result.bundle, "Observation")) == 5
    assert ("OBX[2]-3", "[W 101]") in [(w.location, w.reason[:7]) for w in result.warnings]


def test_encapsulated_obx_value_is_left_out_with_a_warning():
    raw = ORU_R01.replace(b"OBX|3|ST|8251-1^Nh", b"OBX|3|ED|8251-1^Nh")
    result = mapped(raw)
    note = [o for o in resources(result.bundle, "Observation") if o["code"]["coding"][0]["code"] == "8251-1"][
        0
    ]
    assert not any(k.startswith("value") for k in note)
    assert ("OBX[3]-5", "[W 0]") in [(w.location, w.reason[:5]) for w in result.warnings]


def test_orc5_with_an_order_control_code_falls_back_to_orc1():
    result = mapped("orm-o01-v2.3-nw-in-orc5.hl7")
    sr = one(result.bundle, "ServiceRequest")
    assert sr["status"] == "active" and sr["priority"] == "routine"
    assert [(w.location, w.reason[:8]) for w in result.warnings] == [("ORC[1]-5", "[W 103] ")]


def test_unknown_order_control_code_gives_unknown_status_with_a_warning():
    raw = corpus("oml-o21-v2.5.1-specimen.hl7").replace(b"ORC|NW|CD-8001|||SC|", b"ORC|ZZ|CD-8001||||")
    result = mapped(raw)
    assert one(result.bundle, "ServiceRequest")["status"] == "unknown"
    assert result.warnings[0].location == "ORC[1]-1"


def test_omg_general_order_with_its_reason_diagnosis():
    b = bundle_of("omg-o19-v2.7-imaging.hl7")
    sr = one(b, "ServiceRequest")
    assert sr["code"]["coding"][0]["code"] == "36643-5" and sr["priority"] == "stat"
    assert sr["authoredOn"] == "2025-03-21T08:00:00+07:00"
    assert one(b, "Condition")["code"]["coding"][0]["code"] == "K35.8"


def test_order_without_numbers_uses_the_placer_group_number():
    orc = seg("ORC", {1: "NW", 4: "NHOM-77", 9: "20250320060000"})
    raw = msg(msh("OML^O21^OML_O21", "GROUP1"), PID_AN, orc, "OBR|1|||2345-7^Glucose máu^LN")
    result = mapped(raw)
    sr = one(result.bundle, "ServiceRequest")
    assert sr["id"] == ref("ServiceRequest", "01929", "order", "GRP:NHOM-77|2345-7").split("/")[1]
    assert "identifier" not in sr
    assert [(w.location, w.reason[:8]) for w in result.warnings] == [("ORC[1]-2", "[W 101] ")]

"""MDM^T01-T11 -> DocumentReference and PPR^PC1-PC3 -> Condition on the problem list."""

from __future__ import annotations

import base64

from tests.adapters.hl7v2.corpus_files import bundle_of, one, ref, resources


def test_t02_discharge_paper_with_its_pdf():
    b = bundle_of("mdm-t02-v2.5-discharge-paper.hl7")
    doc = one(b, "DocumentReference")
    assert doc["status"] == "current" and doc["docStatus"] == "final"
    assert doc["masterIdentifier"] == {
        "system": "urn:lienthong:hl7v2/01929/document/HIS_VNPT",
        "value": "GRV-2025-0101",
    }
    assert doc["type"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0270",
        "code": "DS",
        "display": "Giấy ra viện",
    }
    [content] = doc["content"]
    assert content["attachment"]["contentType"] == "application/pdf"
    assert (
        base64.b64decode(content["attachment"]["data"]).decode()
        == "GIẤY RA VIỆN - Bệnh viện Bạch Mai - NGUYỄN VĂN AN"
    )
    assert doc["date"] == "2025-03-18T15:30:00+07:00" and doc["description"] == "Giấy ra viện"
    assert doc["context"]["encounter"] == [{"reference": ref("Encounter", "01929", "visit", "VV2025000101")}]
    assert doc["author"] and doc["authenticator"]["reference"].startswith("Practitioner/")


def test_text_content_becomes_one_utf8_text_attachment():
    doc = one(bundle_of("mdm-t04-v2.5.1-status-content.hl7"), "DocumentReference")
    [content] = doc["content"]
    assert content["attachment"]["contentType"] == "text/plain; charset=utf-8"
    text = base64.b64decode(content["attachment"]["data"]).decode()
    assert text == "Nội soi dạ dày: viêm xung huyết hang vị.\nTest HP nhanh: dương tính."
    assert doc["docStatus"] == "final"


def test_notification_without_content_still_has_a_titled_attachment():
    doc = one(bundle_of("mdm-t01-v2.3-notification.hl7"), "DocumentReference")
    assert doc["content"] == [{"attachment": {"title": "Phiếu tóm tắt thủ thuật"}}]
    assert doc["docStatus"] == "preliminary"


def test_addendum_and_replacement_point_at_the_parent_document():
    parent = one(bundle_of("mdm-t02-v2.5-discharge-paper.hl7"), "DocumentReference")
    addendum = one(bundle_of("mdm-t06-v2.6-addendum.hl7"), "DocumentReference")
    replacement = one(bundle_of("mdm-t10-v2.8-replace.hl7"), "DocumentReference")
    assert addendum["relatesTo"] == [
        {"code": "appends", "target": {"reference": f"DocumentReference/{parent['id']}"}}
    ]
    assert replacement["relatesTo"][0]["code"] == "replaces"
    assert replacement["content"][0]["attachment"]["url"].endswith("GRV-2025-0101-V2.pdf")
    text = base64.b64decode(addendum["content"][0]["attachment"]["data"]).decode()
    assert text == "Hẹn tái khám sau 2 tuần.\nUống thuốc đều."  # \.br\ is a line break


def test_cancel_notification_marks_the_document_entered_in_error():
    original = one(bundle_of("mdm-t04-v2.5.1-status-content.hl7"), "DocumentReference")
    cancelled = one(bundle_of("mdm-t11-v2.5-cancel.hl7"), "DocumentReference")
    assert cancelled["id"] == original["id"] and cancelled["status"] == "entered-in-error"


def test_pc1_adds_a_problem_with_note_and_its_observation():
    b = bundle_of("ppr-pc1-v2.3.1-add-problem.hl7")
    problem = one(b, "Condition")
    assert problem["category"][0]["coding"][0]["code"] == "problem-list-item"
    assert problem["clinicalStatus"]["coding"][0]["code"] == "active"
    assert problem["code"]["coding"][0]["code"] == "E11.9"
    assert problem["onsetDateTime"] == "2020-01-01" and problem["recordedDate"] == "2020-01-15"
    assert problem["note"] == [{"text": "Đang điều trị metformin, kiểm soát chưa tốt."}]
    assert one(b, "Observation")["valueQuantity"]["value"] == 7.1


def test_pc2_updates_and_pc3_deletes_the_same_problem():
    added = one(bundle_of("ppr-pc1-v2.3.1-add-problem.hl7"), "Condition")
    updated = one(bundle_of("ppr-pc2-v2.5-update-problem.hl7"), "Condition")
    assert updated["id"] == added["id"]
    deleted = one(bundle_of("ppr-pc3-v2.6-delete-problem.hl7"), "Condition")
    assert deleted["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in deleted
    assert resources(bundle_of("ppr-pc3-v2.6-delete-problem.hl7"), "Observation") == []

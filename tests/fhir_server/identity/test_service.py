"""Linking service on the real store (SQLite and PostgreSQL): Person link sets, review queue, undo."""

from sqlalchemy import select

from fhir_server.identity import service
from fhir_server.storage.sql.identity import identity_link

from .conftest import patient, put_all

HANOI = {"province": "01", "district": "005", "ward": "00160"}


def test_deterministic_link_by_cccd_across_two_hospitals(store):
    # Different spelling (no accents) and no address at the second hospital; the CCCD decides.
    a = patient("01001", "BN0001", "Nguyễn Văn Đức", "1985-06-15", "male", cccd="001085012345", **HANOI)
    b = patient("79010", "HS-99", "NGUYEN VAN DUC", "1985", "male", cccd="001085012345")
    other = patient("79010", "HS-100", "Nguyễn Văn Đức", "1992-01-30", "male", cccd="079092000111")
    put_all(store, [a, b, other])
    assert service.link_patient(store, a["id"])["linked"] == []  # nothing indexed yet but itself
    summary = service.link_patient(store, b["id"])
    assert summary["linked"] == [a["id"]]
    assert service.linked_patient_ids(store, a["id"]) == sorted([a["id"], b["id"]])
    assert service.linked_patient_ids(store, other["id"]) == [other["id"]]
    # The link set is a Lienthong-owned Person; the hospitals' Patients keep their single version.
    person_id = service.person_of(store, a["id"])
    person = store.read("Person", person_id).as_dict()
    targets = {lk["target"]["reference"] for lk in person["link"]}
    assert targets == {f"Patient/{a['id']}", f"Patient/{b['id']}"}
    assert store.read("Patient", a["id"]).version == 1
    with store.engine.connect() as conn:
        methods = {m for (m,) in conn.execute(select(identity_link.c.method))}
    assert methods == {"deterministic"}


def test_bhyt_stable_part_links_after_card_prefix_change(store):
    a = patient("01001", "BN1", "Trần Thị Mai", "1960-02-11", "female", bhyt="DN4010123456789")
    b = patient("01002", "BN2", "Trần Thị Mai", "1960-02-11", "female", bhyt="HT3010123456789")
    put_all(store, [a, b])
    result = service.link_all(store)
    assert result["links"] == 1
    assert service.linked_patient_ids(store, b["id"]) == sorted([a["id"], b["id"]])


def test_review_queue_accept_then_undo(store):
    # Same name, year-only birth date, another province, no sex, no ids: uncertain, so queued.
    a = patient("01001", "BN1", "Lê Văn Tâm", "1950", "male", province="01", district="005", ward="00160")
    b = patient("79002", "BN2", "LE VAN TAM", "1950-08-17", None, province="79", district="760", ward="26734")
    put_all(store, [a, b])
    service.link_all(store)
    assert service.linked_patient_ids(store, a["id"]) == [a["id"]]
    queue = service.review_list(store)
    assert len(queue) == 1 and queue[0]["features"]["birth"] == "partial"
    service.review_accept(store, queue[0]["review_id"], by="bs.hoa")
    assert service.linked_patient_ids(store, a["id"]) == sorted([a["id"], b["id"]])
    assert service.review_list(store) == []
    person_id = service.person_of(store, a["id"])

    undone = service.undo_link(store, b["id"], by="bs.hoa")
    assert undone["unlinked_from"] == [a["id"]]
    assert service.linked_patient_ids(store, a["id"]) == [a["id"]]
    assert store.read("Person", person_id).deleted
    # Re-running the linker must respect the undo.
    service.link_all(store)
    assert service.linked_patient_ids(store, b["id"]) == [b["id"]]
    assert service.review_list(store) == []


def test_rejected_pair_is_not_queued_again(store):
    a = patient("01001", "BN1", "Lê Văn Tâm", "1950", "male", province="01", district="005", ward="00160")
    b = patient("79002", "BN2", "LE VAN TAM", "1950-08-17", None, province="79", district="760", ward="26734")
    put_all(store, [a, b])
    service.link_patient(store, a["id"])
    service.link_patient(store, b["id"])
    [item] = service.review_list(store)
    service.review_reject(store, item["review_id"])
    service.link_all(store)
    assert service.review_list(store) == []
    assert service.review_list(store, "rejected")[0]["review_id"] == item["review_id"]


def test_link_sets_merge_when_a_third_record_bridges_them(store):
    a = patient("01001", "A1", "Vũ Thị Lan", "1970-10-02", "female", cccd="001170000001")
    b = patient("01002", "B1", "Vũ Thị Lan", "1970-10-02", "female", bhyt="GD4010999888777")
    c = patient("01003", "C1", "Vu Thi Lan", "1970-10-02", "female", cccd="001170000001", bhyt="0999888777")
    put_all(store, [a, b, c])
    for p in (a, b, c):
        service.link_patient(store, p["id"])
    ids = sorted(p["id"] for p in (a, b, c))
    assert service.linked_patient_ids(store, a["id"]) == ids
    person = store.read("Person", service.person_of(store, b["id"])).as_dict()
    assert len(person["link"]) == 3

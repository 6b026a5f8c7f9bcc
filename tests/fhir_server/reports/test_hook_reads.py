"""The facts hook reads what the transaction itself just wrote from the transaction, not from the database:
the facts it keeps are the ones a full rebuild computes from the stored resources, and a transaction only
ever sees its own flushed versions that way (not those of a savepoint that rolled back)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fhir_server.errors import FhirError
from fhir_server.interactions import core as ix
from fhir_server.reports.hook import attach_reports, rebuild
from fhir_server.storage.sql.reports import report_visit

from .visits import BINH_DUONG, HA_NOI, HO_CHI_MINH, visit_bundle

NAMES = ["Nguyễn Văn An", "Trần Thị Bích", "Lê Văn Hùng", "Phạm Thị Hoa"]


@pytest.fixture(autouse=True)
def _facts(store):
    attach_reports(store)


def _facts_rows(store) -> list[dict]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(report_visit).order_by(report_visit.c.encounter_id))
        return [dict(r._mapping) for r in rows]


async def _send(client, bundle: dict) -> None:
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text


async def test_facts_kept_while_writing_equal_the_facts_a_rebuild_computes(client, store):
    for i in range(4):
        await _send(client, visit_bundle(i, name=NAMES[i], home=(BINH_DUONG, HA_NOI)[i % 2]))
    # only the diagnosis changes: the Encounter comes from the database, the Condition from the Bundle
    diagnosis = visit_bundle(1, name=NAMES[1], home=HA_NOI, icd="A09")
    diagnosis["entry"] = [e for e in diagnosis["entry"] if e["resource"]["resourceType"] == "Condition"]
    await _send(client, diagnosis)
    # only the Patient moves: the visit's fact takes the new province
    moved = visit_bundle(2, name=NAMES[2], home=HO_CHI_MINH)
    moved["entry"] = [e for e in moved["entry"] if e["resource"]["resourceType"] == "Patient"]
    await _send(client, moved)
    kept = _facts_rows(store)
    assert {r["encounter_id"]: r["icd_code"] for r in kept}["lk-1"] == "A09"
    assert {r["encounter_id"]: r["province_old"] for r in kept}["lk-2"] == "79"
    rebuild(store)
    assert _facts_rows(store) == kept


def test_a_transaction_sees_its_flushed_content_and_not_a_rolled_back_savepoint(store):
    patient = {"resourceType": "Patient", "id": "bn-tx", "gender": "female"}
    with store.begin() as tx:
        ix.create(tx, dict(patient), res_id="bn-tx")
        assert tx.flushed_content([("Patient", "bn-tx")]) == {}  # staged, not yet written
        tx.flush()
        written = tx.flushed_content([("Patient", "bn-tx"), ("Patient", "other")])
        assert list(written) == [("Patient", "bn-tx")]
        assert written[("Patient", "bn-tx")] == tx.current("Patient", "bn-tx").content
        with pytest.raises(FhirError):
            with tx.savepoint() as sp:
                ix.update(sp, "Patient", "bn-tx", dict(patient, gender="male"))
                sp.flush()
                raise FhirError.bad_request("the savepoint rolls back")
        assert b'"female"' in tx.flushed_content([("Patient", "bn-tx")])[("Patient", "bn-tx")]
        ix.delete(tx, "Patient", "bn-tx")
        tx.flush()
        assert tx.flushed_content([("Patient", "bn-tx")]) == {("Patient", "bn-tx"): None}

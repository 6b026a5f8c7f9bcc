"""ingest_many: one archive commit and one data commit for many payloads; identity links on ingest."""

from __future__ import annotations

from adapters.ids import deterministic_id
from adapters.pipeline import ingest_many
from adapters.qd130.plugin import Qd130Adapter
from adapters.repository import ingest_repository
from adapters.synth import generate
from fhir_server.identity.service import link_all, linked_patient_ids
from fhir_server.settings import Settings
from lienthong.runtime import open_runtime


def test_batch_of_payloads_archives_all_and_isolates_the_bad_one(store):
    visits = generate(hospitals=2, visits=4, seed=11).visits
    items = [(v.xml, f"file:{v.filename}") for v in visits]
    items.insert(2, (b"<GIAMDINHHS><THONGTINDONVI>", "file:truncated.xml"))
    results = ingest_many(store, items, adapter="qd130")
    assert [r.status for r in results] == ["processed", "processed", "failed", "processed", "processed"]
    assert all(r.inbox_id for r in results)
    assert (
        ingest_repository(store).get_inbox(results[2].inbox_id)["payload"] == b"<GIAMDINHHS><THONGTINDONVI>"
    )
    assert ingest_repository(store).count_dead_letters() == 1
    for visit in visits:
        assert store.read("Patient", _patient_id(visit)) is not None


def test_same_person_at_two_hospitals_is_linked_on_ingest(store):
    mine = _visits_of_someone_seen_at_two_hospitals()
    results = ingest_many(store, [(v.xml, v.filename) for v in mine], adapter="qd130")
    assert all(r.status == "processed" for r in results)
    patient_ids = {_patient_id(v) for v in mine}
    assert len(patient_ids) >= 2
    first = sorted(patient_ids)[0]
    assert patient_ids <= set(linked_patient_ids(store, first))


def _visits_of_someone_seen_at_two_hospitals() -> list:
    data = generate(hospitals=3, visits=60, seed=3)
    by_person: dict[str, set[str]] = {}
    for v in data.visits:
        by_person.setdefault(v.person_id, set()).add(v.facility)
    person = next(p for p, facilities in by_person.items() if len(facilities) >= 2)
    return [v for v in data.visits if v.person_id == person]


def _patient_id(visit) -> str:
    return deterministic_id("Patient", visit.facility, visit.ma_bn)


def test_linking_on_ingest_can_be_left_to_link_all(db_url, monkeypatch):
    monkeypatch.setenv("LIENTHONG_LINK_ON_INGEST", "false")
    runtime = open_runtime(Settings.from_env().with_(database_url=db_url))
    assert runtime.linker is None
    mine = _visits_of_someone_seen_at_two_hospitals()
    ingest_many(runtime.store, [(v.xml, v.filename) for v in mine], adapter="qd130")
    first = sorted({_patient_id(v) for v in mine})[0]
    assert linked_patient_ids(runtime.store, first) == [first]
    link_all(runtime.store)
    assert len(linked_patient_ids(runtime.store, first)) >= 2
    runtime.store.close()


def test_adapter_output_is_model_validated_when_asked(store, monkeypatch):
    # A mapping bug that emits an invalid element: only the R4B model check catches it.
    original = Qd130Adapter.to_fhir

    def buggy_mapping(self, record, options=None):
        mapped = original(self, record, options)
        for entry in mapped.bundle["entry"]:
            if entry["resource"]["resourceType"] == "Patient":
                entry["resource"]["gender"] = {"not": "a code"}
        return mapped

    monkeypatch.setattr(Qd130Adapter, "to_fhir", buggy_mapping)
    monkeypatch.setenv("LIENTHONG_VALIDATE_INGEST", "true")
    visit = generate(hospitals=1, visits=1, seed=5).visits[0]
    result = ingest_many(store, [(visit.xml, visit.filename)], adapter="qd130")[0]
    assert result.status == "failed"
    assert "Patient.gender" in result.records[0].errors[0]["reason"]
    assert result.records[0].dead_letter_id is not None

"""Ingestion pipeline on real SQLite and PostgreSQL: archive first, per-record transactions,
dead letters, replay after a mapping fix, idempotent re-ingest, and the HTTP endpoints."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select

from adapters.ids import deterministic_id
from adapters.pipeline import ingest, replay
from adapters.qd130.vendors import reload_vendors
from adapters.repository import inbox, ingest_repository
from adapters.synth import generate
from adapters.synth.envelope import build_envelope, read_files
from fhir_server.settings import Settings
from lienthong.app import create_app

SAMPLES = Path("/work/shared/standards/samples")
if not SAMPLES.exists():
    SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "standards" / "samples"
OUT = SAMPLES / "qd130-outpatient.xml"
INP = SAMPLES / "qd130-inpatient-referral.xml"


def _bad_and_good() -> bytes:
    good = read_files(OUT.read_bytes())[0]
    bad = [
        (
            n,
            b.replace(b"79999_2024_03_BN000123_KB01", b"79999_BAD").replace(
                b"<SO_CCCD>079090001234</SO_CCCD>", b"<SO_CCCD>079085001234</SO_CCCD>"
            ),
        )
        for n, b in good
    ]
    return build_envelope("79999", [good, bad])


def test_samples_ingest_and_reingest_is_idempotent(store):
    for path in (OUT, INP):
        first = ingest(store, path.read_bytes(), source=f"file:{path.name}")
        assert first.status == "processed", first.as_dict()
        assert first.records[0].created > 20
    enc_id = deterministic_id("Encounter", "79999", "79999_2024_04_BN000456_BA0007")
    before = store.read("Encounter", enc_id)
    again = ingest(store, INP.read_bytes(), source="file:again")
    assert again.status == "processed"
    assert again.records[0].created == 0 and again.records[0].existing == again.records[0].resources
    after = store.read("Encounter", enc_id)
    assert after.version == before.version == 1
    pat = orjson.loads(store.read("Patient", deterministic_id("Patient", "79999", "BN000456")).content)
    assert pat["name"][0]["text"] == "TRẦN THỊ BÌNH"
    with store.engine.connect() as conn:
        rows = conn.execute(select(inbox.c.status, inbox.c.channel)).all()
    assert [tuple(r) for r in rows] == [("processed", "qd130")] * 3


def test_payload_is_archived_even_when_unparseable(store):
    res = ingest(store, b"\x00garbage", source="test", adapter="qd130")
    assert res.status == "failed" and res.rejected == 1
    row = ingest_repository(store).get_inbox(res.inbox_id)
    assert row["payload"] == b"\x00garbage" and row["status"] == "failed" and len(row["sha256"]) == 64
    (dl,) = ingest_repository(store).list_dead_letters()
    assert dl["location"] == "file" and dl["inbox_id"] == res.inbox_id


def test_partial_file_dead_letters_only_the_bad_record(store):
    res = ingest(store, _bad_and_good(), source="test")
    assert res.status == "partial" and (res.accepted, res.rejected) == (1, 1)
    bad = res.records[1]
    assert bad.key == "79999_BAD" and bad.errors[0]["location"] == "XML1/TONG_HOP/SO_CCCD"
    dl = ingest_repository(store).get_dead_letter(bad.dead_letter_id)
    assert dl["record_key"] == "79999_BAD" and b"HOSO" in dl["payload"]
    assert store.read("Encounter", deterministic_id("Encounter", "79999", "79999_2024_03_BN000123_KB01"))
    assert store.read("Encounter", deterministic_id("Encounter", "79999", "79999_BAD")) is None


def test_replay_after_mapping_fix(store, tmp_path, monkeypatch):
    profile = tmp_path / "his_y.yaml"
    profile.write_text("name: his_y\ndecimal_separator: '.'\n", encoding="utf-8")
    monkeypatch.setenv("LIENTHONG_VENDOR_PATH", str(tmp_path))
    reload_vendors()
    try:
        files = [
            (n, b.replace(b"<DON_GIA>1200.5</DON_GIA>", b"<DON_GIA>1200,5</DON_GIA>"))
            for n, b in read_files(OUT.read_bytes())[0]
        ]
        res = ingest(store, build_envelope("79999", [files]), source="test", options={"vendor": "his_y"})
        assert res.status == "failed"
        dl_id = res.records[0].dead_letter_id
        assert replay(store, dl_id)[0]["status"] == "failed"  # nothing fixed yet
        assert ingest_repository(store).get_dead_letter(dl_id)["attempts"] == 1
        profile.write_text("name: his_y\ndecimal_separator: ','\n", encoding="utf-8")  # the fix
        reload_vendors()
        (outcome,) = replay(store)
        assert outcome["status"] == "replayed"
        assert ingest_repository(store).get_dead_letter(dl_id)["status"] == "replayed"
        assert ingest_repository(store).list_dead_letters() == []
        assert store.read("Encounter", deterministic_id("Encounter", "79999", "79999_2024_03_BN000123_KB01"))
    finally:
        reload_vendors()


def test_synthetic_dataset_ingests_cleanly_and_links_hospitals(store):
    ds = generate(hospitals=3, visits=24, seed=7)
    for v in ds.visits:
        res = ingest(store, v.xml, source=f"synth:{v.filename}")
        assert res.status == "processed", res.as_dict()
    # Same person (same CCCD) has a separate Patient at each hospital they visited.
    multi = next(p for p in ds.persons if len(p.mrn) > 1)
    ids = {deterministic_id("Patient", f, bn) for f, bn in multi.mrn.items()}
    assert len(ids) == len(multi.mrn) and all(store.read("Patient", i) for i in ids)


async def test_http_ingest_endpoints(app, store):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post(
            "/ingest/qd130", content=OUT.read_bytes(), headers={"Content-Type": "application/xml"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["records"][0]["status"] == "accepted"
        r = await c.post("/ingest", content=_bad_and_good())
        assert r.status_code == 207 and r.json()["rejected"] == 1
        r = await c.post("/ingest", content=b"not a known format")
        assert r.status_code == 422
        r = await c.post("/ingest/no-such-adapter", content=b"x")
        assert r.status_code == 404
        r = await c.get("/ingest/dead-letters")
        body = r.json()
        assert r.status_code == 200 and body["total"] == 1
        dl_id = body["items"][0]["dl_id"]
        r = await c.post(f"/ingest/dead-letters/{dl_id}/replay")
        assert r.status_code == 422  # the CCCD is still wrong
        r = await c.get("/fhir/Patient/" + deterministic_id("Patient", "79999", "BN000123"))
        assert r.status_code == 200


async def test_http_body_limit(settings, store):
    app = create_app(Settings(database_url=settings.database_url, max_body_bytes=1000), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        r = await c.post("/ingest/qd130", content=OUT.read_bytes())
        assert r.status_code == 413


@pytest.mark.parametrize("seed", [3])
def test_synth_is_deterministic_with_ground_truth(seed):
    a, b = generate(hospitals=4, visits=60, seed=seed), generate(hospitals=4, visits=60, seed=seed)
    assert [v.xml for v in a.visits] == [v.xml for v in b.visits]
    truth = a.truth()
    assert all(truth[(v.facility, v.ma_bn)] == v.person_id for v in a.visits)
    referred = [v for v in a.visits if v.referred_to]
    assert referred, "expected at least one referral"
    arrivals = [v for v in a.visits if v.referred_from]
    assert arrivals and all(v.facility != v.referred_from for v in arrivals)
    assert any(
        "ư" in p.full_name or "ễ" in p.full_name or "ơ" in p.full_name or "ạ" in p.full_name
        for p in a.persons
    )

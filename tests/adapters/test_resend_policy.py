"""Re-sends: identical ones are no-ops, an older export never overwrites newer data, identifiers add up.

A QĐ130 visit export is a snapshot of the patient at that visit (its own time: NGAY_TTOAN); an HL7 v2
message's is MSH-7. The store compares those times, not arrival order.
"""

from __future__ import annotations

import base64
import re

import orjson
from sqlalchemy import func, select

from adapters.ids import deterministic_id
from adapters.pipeline import ingest_many
from adapters.synth import generate
from fhir_server.storage.sql.schema import resource_history

CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"


def _edit_xml1(xml: bytes, field: str, value: str) -> bytes:
    """The same QĐ130 file with one XML1 field set to `value` (inside the base64 NOIDUNGFILE)."""

    def swap(m: re.Match) -> bytes:
        inner = base64.b64decode(m.group(1)).decode()
        if "<TONG_HOP>" in inner:
            inner = re.sub(
                rf"<{field}>.*?</{field}>", f"<{field}>{value}</{field}>", inner, count=1, flags=re.S
            )
        return b"<NOIDUNGFILE>" + base64.b64encode(inner.encode()) + b"</NOIDUNGFILE>"

    return re.sub(rb"<NOIDUNGFILE>(.*?)</NOIDUNGFILE>", swap, xml, flags=re.S)


def _older_and_newer_visit():
    """Two visits of one patient at one hospital, the older first (by MA_LK's visit date)."""
    by_key: dict[tuple[str, str], list] = {}
    for v in generate(hospitals=2, visits=120, persons=25, seed=7).visits:
        by_key.setdefault((v.facility, v.ma_bn), []).append(v)
    pair = next(
        vs
        for vs in by_key.values()
        if len(vs) >= 2
        and vs[0].ma_lk.split("_")[1] != vs[1].ma_lk.split("_")[1]
        and all(_has_cccd(v) for v in vs[:2])
    )
    older, newer = sorted(pair[:2], key=lambda v: v.ma_lk.split("_")[1])
    return older, newer


def _has_cccd(visit) -> bool:
    return any(
        b"<SO_CCCD>0" in base64.b64decode(m)
        for m in re.findall(rb"<NOIDUNGFILE>(.*?)</NOIDUNGFILE>", visit.xml, re.S)
    )


def _ingest(store, *files: tuple[bytes, str]) -> None:
    results = ingest_many(store, list(files), adapter="qd130")
    assert all(r.status == "processed" for r in results), [r.as_dict() for r in results]


def _patient(store, visit) -> tuple[int, dict]:
    stored = store.read("Patient", deterministic_id("Patient", visit.facility, visit.ma_bn))
    return stored.version, orjson.loads(stored.content)


def _phones(body: dict) -> list[str]:
    return [t["value"] for t in body.get("telecom", [])]


def _history_rows(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(resource_history)).scalar_one()


def test_re_ingesting_identical_files_writes_no_new_version(store):
    visits = generate(hospitals=2, visits=40, persons=10, seed=4).visits
    files = [(v.xml, f"file:{v.filename}") for v in visits]
    for i in range(0, len(files), 10):
        _ingest(store, *files[i : i + 10])
    before = _history_rows(store)
    for i in range(0, len(files), 10):  # the same files again, in other batches
        _ingest(store, *files[i : i + 7])
        _ingest(store, *files[i + 7 : i + 10])
    assert _history_rows(store) == before


def test_an_older_export_arriving_later_does_not_overwrite_the_newer_patient(store):
    older, newer = _older_and_newer_visit()
    old_file = _edit_xml1(older.xml, "DIEN_THOAI", "0911111111")
    new_file = _edit_xml1(newer.xml, "DIEN_THOAI", "0922222222")
    _ingest(store, (new_file, "file:newer.xml"))
    version, body = _patient(store, newer)
    assert "0922222222" in _phones(body)
    _ingest(store, (old_file, "file:older.xml"))
    after_version, after = _patient(store, newer)
    assert after_version == version and "0922222222" in _phones(after) and "0911111111" not in _phones(after)


def test_a_newer_export_still_updates_the_patient(store):
    older, newer = _older_and_newer_visit()
    _ingest(store, (_edit_xml1(older.xml, "DIEN_THOAI", "0911111111"), "file:older.xml"))
    _ingest(store, (_edit_xml1(newer.xml, "DIEN_THOAI", "0922222222"), "file:newer.xml"))
    version, body = _patient(store, newer)
    assert version == 2 and _phones(body)[0] == "0922222222"


def _cccds(body: dict) -> list[str]:
    return [i["value"] for i in body.get("identifier", []) if i.get("system") == CCCD]


def test_a_later_export_without_the_cccd_keeps_it(store):
    older, newer = _older_and_newer_visit()
    _ingest(store, (older.xml, "file:older.xml"))
    cccd = _cccds(_patient(store, older)[1])
    assert len(cccd) == 1
    _ingest(store, (_edit_xml1(newer.xml, "SO_CCCD", ""), "file:newer.xml"))
    assert _cccds(_patient(store, newer)[1]) == cccd


def test_an_older_export_with_a_cccd_the_newer_lacked_adds_only_the_cccd(store):
    older, newer = _older_and_newer_visit()
    _ingest(store, (_edit_xml1(newer.xml, "SO_CCCD", ""), "file:newer.xml"))
    _, before = _patient(store, newer)
    assert _cccds(before) == []
    _ingest(store, (older.xml, "file:older.xml"))
    _, after = _patient(store, newer)
    assert len(_cccds(after)) == 1
    rest = {k: v for k, v in after.items() if k not in ("identifier", "meta")}
    assert rest == {k: v for k, v in before.items() if k not in ("identifier", "meta")}

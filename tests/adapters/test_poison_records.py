"""A poison record is refused alone, naming its field; the records beside it are committed."""

from __future__ import annotations

import base64
import random
import re

from sqlalchemy import func, select

from adapters.pipeline import ingest_many
from adapters.qd130 import validate as qd130_validate
from adapters.repository import dead_letter, ingest_repository
from adapters.synth import generate
from fhir_server.interactions.group import commit_group
from tests.fhir_server.search.vn_data import transaction
from tests.fhir_server.vn_data import patient


def _random_text(n: int) -> str:
    # Random, so PostgreSQL cannot compress it under its index-entry limit.
    return "".join(random.Random(5).choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=n))


def _with_ma_bn(xml: bytes, old: str, new: str) -> bytes:
    """The same QĐ130 file with XML1's MA_BN replaced (inside the base64 NOIDUNGFILE)."""

    def swap(m: re.Match) -> bytes:
        inner = base64.b64decode(m.group(1))
        inner = inner.replace(f"<MA_BN>{old}</MA_BN>".encode(), f"<MA_BN>{new}</MA_BN>".encode())
        return b"<NOIDUNGFILE>" + base64.b64encode(inner) + b"</NOIDUNGFILE>"

    return re.sub(rb"<NOIDUNGFILE>(.*?)</NOIDUNGFILE>", swap, xml, flags=re.S)


def _batch_with_one_poison() -> tuple[list[tuple[bytes, str]], list]:
    visits = generate(hospitals=2, visits=11, seed=21).visits
    items = [(v.xml, f"file:{v.filename}") for v in visits]
    poison = visits[5]
    items[5] = (_with_ma_bn(poison.xml, poison.ma_bn, _random_text(20_000)), f"file:{poison.filename}")
    return items, visits


def _encounters(store) -> int:
    return len(list(store.iter_current("Encounter")))


def test_a_20000_character_ma_bn_is_refused_alone_naming_the_field(store):
    items, _ = _batch_with_one_poison()
    results = ingest_many(store, items, adapter="qd130")
    assert [r.status for r in results].count("processed") == 10
    bad = results[5]
    assert bad.status == "failed" and bad.accepted == 0
    [error] = [e for r in bad.records for e in r.errors]
    assert error["field"] == "MA_BN" and error["location"] == "XML1/TONG_HOP/MA_BN"
    assert "20000" in error["reason"]
    assert ingest_repository(store).count_dead_letters() == 1
    assert _encounters(store) == 10  # exactly what the per-file results say was accepted


def test_a_record_the_database_refuses_is_dead_lettered_once_and_the_others_committed(store, monkeypatch):
    # Without the field check, the database itself refuses the record (PostgreSQL: index entry too
    # large): the group is split, the other ten commit, only the poison record is dead-lettered.
    monkeypatch.setattr(qd130_validate, "_check_storable", lambda *args: None)
    items, _ = _batch_with_one_poison()
    results = ingest_many(store, items, adapter="qd130")
    accepted = sum(r.accepted for r in results)
    assert _encounters(store) == accepted
    if store.engine.dialect.name == "postgresql":
        assert accepted == 10 and results[5].status == "failed"
        [error] = [e for r in results[5].records for e in r.errors]
        assert error["location"] == "store/data"  # the data was refused: not worth retrying
        assert ingest_repository(store).count_dead_letters() == 1
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(dead_letter)).scalar_one() == 1
        # Sending the same batch again: the ten are unchanged, the poison one is refused again at
        # once (no retry loop) with one dead letter for this receipt.
        again = ingest_many(store, items, adapter="qd130")
        assert [r.status for r in again] == [r.status for r in results]
        assert _encounters(store) == 10
        assert ingest_repository(store).count_dead_letters() == 2


def test_group_commit_isolates_a_bundle_the_database_refuses(store):
    good = [
        transaction([patient(name="NGUYỄN THỊ MAI", cccd=f"07919000{i:04d}", res_id=f"p{i}")])
        for i in range(3)
    ]
    poison = patient(name="TRẦN VĂN BẢO", res_id="p-poison")
    poison["identifier"][0]["value"] = _random_text(20_000)
    outcomes = commit_group(store, [good[0], transaction([poison]), good[1], good[2]], validate=False)
    assert [isinstance(o, dict) for o in outcomes][0::2] == [True, True]
    assert isinstance(outcomes[3], dict)
    committed = {p.res_id for p in store.iter_current("Patient")}
    assert {"p0", "p1", "p2"} <= committed
    assert ("p-poison" in committed) == isinstance(outcomes[1], dict)


def test_group_commit_isolates_a_bundle_whose_value_has_no_json_form(store):
    # An adapter can build an integer past 64 bits from a vendor's amount field; the REST API never can.
    good = [
        transaction([patient(name="LÊ THỊ HỒNG", cccd=f"07919100{i:04d}", res_id=f"q{i}")]) for i in range(2)
    ]
    poison = patient(name="PHẠM VĂN ĐỨC", res_id="q-poison")
    poison["extension"] = [{"url": "http://example.org/amount", "valueInteger": 2**70}]
    outcomes = commit_group(store, [good[0], transaction([poison]), good[1]], validate=False)
    assert isinstance(outcomes[0], dict) and isinstance(outcomes[2], dict)
    assert not isinstance(outcomes[1], dict) and outcomes[1].status == 422
    committed = {p.res_id for p in store.iter_current("Patient")}
    assert {"q0", "q1"} <= committed and "q-poison" not in committed

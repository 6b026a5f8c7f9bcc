"""What the sender is told: warnings (unmapped segments, substituted codes) travel in the AA ACK and the
per-message ingest result; MSH-10 idempotency answers re-sends, not other messages reusing the number."""

from __future__ import annotations

import pytest

from adapters.hl7v2.mllp import MllpServer
from adapters.repository import processed_message
from tests.adapters.hl7v2.corpus_files import corpus
from tests.adapters.hl7v2.test_mllp import Client, count, err_segments, msa


@pytest.fixture
async def server(store):
    srv = MllpServer(store, port=0, workers=2)
    await srv.start()
    yield srv
    await srv.close()


async def test_aa_ack_lists_unmapped_segments_as_warnings(server):
    c = await Client.connect(server.port)
    ack = await c.send(corpus("adt-a28-v2.5-add-person.hl7"))
    await c.close()
    fields = msa(ack)
    assert fields[1] == "AA" and len(fields) == 3  # no MSA-3 text: the message was accepted
    assert err_segments(ack) == [
        "ERR||ZPK^1^|0^Message accepted^HL70357|W||||segment ZPK not mapped; kept in the archived message"
    ]


async def test_substituted_code_is_a_w_103_in_the_ack(server):
    c = await Client.connect(server.port)
    ack = await c.send(corpus("orm-o01-v2.3-nw-in-orc5.hl7"))
    await c.close()
    assert msa(ack)[1] == "AA"
    errs = err_segments(ack)
    # v2.3 senders get the v2.3 ERR layout (ERR-1 location ^ code & text).
    assert errs[0].startswith("ERR|ORC^1^5^103&'NW' is not an order status (table 0038)")
    # The order's Encounter has not arrived yet: stored anyway (ingest is lenient), and said so.
    assert [e for e in errs[1:] if "Encounter/" in e and "does not exist" in e]


async def test_missing_visit_number_is_a_w_101_with_the_field(server, store):
    c = await Client.connect(server.port)
    ack = await c.send(corpus("adt-a01-v2.3.1-no-visit-number.hl7"))
    await c.close()
    assert msa(ack)[1] == "AA"
    assert any(e.startswith("ERR|PV1^1^19^101&visit number (PV1-19) missing") for e in err_segments(ack))
    assert count(store, processed_message) == 1


async def test_http_ingest_result_lists_the_warnings(client):
    r = await client.post(
        "http://test/ingest/hl7v2",
        content=corpus("adt-a28-v2.5-add-person.hl7"),
        headers={"Content-Type": "x-application/hl7-v2+er7"},
    )
    assert r.status_code in (200, 201), r.text
    [record] = r.json()["records"]
    assert record["status"] == "accepted"
    assert [w["reason"] for w in record["warnings"]] == [
        "[W 0] segment ZPK not mapped; kept in the archived message"
    ]


async def test_a_resend_with_a_restamped_msh7_gets_the_stored_ack(server, store):
    c = await Client.connect(server.port)
    raw = corpus("oru-r01-v2.5-cbc.hl7")
    first = await c.send(raw)
    again = await c.send(raw.replace(b"|20250310081500|", b"|20250310091500|"))
    await c.close()
    assert again == first and count(store, processed_message) == 1


async def test_another_message_reusing_an_msh10_is_processed_not_answered_from_the_first(server, store):
    c = await Client.connect(server.port)
    a13 = corpus("adt-a13-v2.8-cancel-discharge.hl7")
    first = await c.send(a13)
    other = a13.replace(b"ADT^A13^ADT_A01", b"ADT^A08^ADT_A01").replace(b"EVN|A13", b"EVN|A08")
    second = await c.send(other)
    await c.close()
    assert msa(first)[1:3] == msa(second)[1:3] == ["AA", "BM-A13-0007"]
    assert second != first and b"ACK^A08^ACK" in second
    assert count(store, processed_message) == 2

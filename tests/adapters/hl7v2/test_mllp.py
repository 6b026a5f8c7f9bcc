"""End to end over real TCP: the MLLP listener, ACK codes, commit-before-AA, idempotency, bad input."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from sqlalchemy import func, select

from adapters.hl7v2.mllp import MllpServer, frame
from adapters.ids import deterministic_id
from adapters.repository import dead_letter, inbox, processed_message
from fhir_server.identity.service import linked_patient_ids
from fhir_server.storage.sql.schema import resource
from tests.adapters.hl7v2.samples import ADT_A01, ADT_A08, ALL_GOOD, ORU_R01, msg

MRN = "http://fhir.hl7.org.vn/core/sid/mrn/01929"


class Client:
    """A real MLLP client on a TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> "Client":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, raw: bytes, framed: bool = True) -> bytes:
        self.writer.write(frame(raw) if framed else raw)
        await self.writer.drain()
        return await self.read_ack()

    async def read_ack(self) -> bytes:
        data = await asyncio.wait_for(self.reader.readuntil(b"\x1c\r"), timeout=30)
        assert data.startswith(b"\x0b")
        return data[1:-2]

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def msa(ack: bytes) -> list[str]:
    seg = [s for s in ack.split(b"\r") if s.startswith(b"MSA|")][0]
    return seg.decode().split("|")


def err_segments(ack: bytes) -> list[str]:
    return [s.decode() for s in ack.split(b"\r") if s.startswith(b"ERR|")]


def count(store, table, *where) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


@pytest.fixture
async def server(store):
    srv = MllpServer(store, port=0, max_bytes=64 * 1024, workers=4)
    await srv.start()
    yield srv
    await srv.close()


async def test_all_message_types_are_acked_after_commit_and_searchable(server, store, client):
    c = await Client.connect(server.port)
    for name, raw in ALL_GOOD.items():
        ack = await c.send(raw)
        fields = msa(ack)
        assert fields[1] == "AA", (name, ack)
        assert fields[2] == raw.split(b"|")[9].decode()
        # AA means committed: the data is readable the moment the ACK arrives.
        assert store.read(
            "Provenance", deterministic_id("Provenance", "01929", "hl7v2", "HIS_VNPT", fields[2])
        )
    await c.close()
    pat = store.read("Patient", deterministic_id("Patient", "01929", "BN000123"))
    body = orjson.loads(pat.content)
    assert body["name"][0]["text"] == "NGUYỄN VĂN AN"  # UTF-8 survived MLLP + storage
    r = await client.get("/Patient", params={"identifier": f"{MRN}|BN000123"})
    assert r.status_code == 200
    assert [e["resource"]["id"] for e in r.json().get("entry", [])] == [pat.res_id]
    r = await client.get("/Observation", params={"code": "http://loinc.org|718-7"})
    [entry] = r.json()["entry"]
    assert entry["resource"]["valueQuantity"]["value"] == 135
    enc = orjson.loads(
        store.read("Encounter", deterministic_id("Encounter", "01929", "visit", "VN2024000123")).content
    )
    assert enc["status"] == "cancelled"  # A11 was the last ADT for this visit in ALL_GOOD order
    old = orjson.loads(store.read("Patient", deterministic_id("Patient", "01929", "BN009999")).content)
    assert old["active"] is False and old["link"][0]["type"] == "replaced-by"
    assert server.stats["AA"] == len(ALL_GOOD)


async def test_resend_returns_the_same_ack_without_rewriting(server, store):
    c = await Client.connect(server.port)
    first = await c.send(ADT_A01)
    pat_v1 = store.read("Patient", deterministic_id("Patient", "01929", "BN000123"))
    second = await c.send(ADT_A01)
    assert second == first and msa(first)[1] == "AA"
    assert store.read("Patient", pat_v1.res_id).version == pat_v1.version == 1
    assert count(store, processed_message) == 1
    assert count(store, inbox) == 2  # every received message is archived, re-sends too
    # Same MSH-10 from another sending application is a different message.
    other = await c.send(ADT_A01.replace(b"|HIS_VNPT|", b"|HIS_KHAC|"))
    assert msa(other)[1] == "AA" and count(store, processed_message) == 2
    # A08 updates the same Patient: version 2.
    assert msa(await c.send(ADT_A08))[1] == "AA"
    assert store.read("Patient", pat_v1.res_id).version == 2
    assert server.stats["duplicates"] == 1
    await c.close()


async def test_bad_content_gets_ae_with_err_and_dead_letter(server, store):
    c = await Client.connect(server.port)
    bad = ADT_A01.replace(b"|19800512|", b"|1980-05-12|")
    ack = await c.send(bad)
    assert msa(ack)[1:3] == ["AE", "ADT0001"]
    [err] = err_segments(ack)
    assert err.startswith("ERR||PID^1^7|102^Data type error^HL70357|E")
    assert "1980-05-12" in err
    assert count(store, dead_letter) == 1 and count(store, inbox) == 1
    assert (
        store.read("Patient", deterministic_id("Patient", "01929", "BN000123")) is None
    )  # nothing half-written
    assert await c.send(bad) == ack  # AE is remembered too: the sender must fix, not resend
    await c.close()


BAD_FRAMES = {
    "missing MSH": msg("PID|1||BN1^^^BV^MR||TRẦN^AN"),
    "wrong version": ADT_A01.replace(b"|2.5|", b"|3.0|").replace(b"ADT0001", b"V30"),
    "unsupported type": ADT_A01.replace(b"ADT^A01^ADT_A01", b"MFN^M02^MFN_M02").replace(b"ADT0001", b"M1"),
    "garbage bytes": bytes(range(1, 11)) + b"\xff\xfe garbage",
    "bad encoding chars": b"MSH|^^^^|HIS|BV|||20240101||ADT^A01|X|P|2.5\r",
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
async def test_unreadable_or_unsupported_gets_ar_and_is_archived(server, store, name):
    c = await Client.connect(server.port)
    ack = await c.send(BAD_FRAMES[name])
    assert msa(ack)[1] == "AR", ack
    assert err_segments(ack)
    assert count(store, inbox) == 1
    assert count(store, processed_message) == 0  # AR is not remembered: a later retry may succeed
    assert msa(await c.send(ORU_R01))[1] == "AA"  # the same connection keeps working
    await c.close()


async def test_wrong_version_err_names_msh_12(server):
    c = await Client.connect(server.port)
    ack = await c.send(BAD_FRAMES["wrong version"])
    assert msa(ack)[2] == "V30"
    assert "203&" in err_segments(ack)[0] and err_segments(ack)[0].startswith(
        "ERR|MSH^1^12"
    )  # v2.3-style ERR-1 for a non-2.5 header
    await c.close()


async def test_oversized_message_gets_ar_and_connection_survives(server, store):
    c = await Client.connect(server.port)
    huge = ORU_R01 + b"NTE|1||" + "Ghi chú dài ".encode() * 20000 + b"\r"
    ack = await c.send(huge)
    assert msa(ack)[1:3] == ["AR", "LAB0001"]
    assert "limit" in err_segments(ack)[0]
    assert count(store, inbox) == 0  # over the bound: not even archived
    assert msa(await c.send(ADT_A01))[1] == "AA"
    await c.close()


async def test_garbage_between_frames_and_truncated_frames(server, store):
    c = await Client.connect(server.port)
    c.writer.write(b"noise before any frame\r\n" + frame(ADT_A01))
    await c.writer.drain()
    assert msa(await c.read_ack())[1] == "AA"
    # A truncated frame (no FS CR) followed by a disconnect: dropped, nothing archived, listener fine.
    c.writer.write(b"\x0b" + ORU_R01[:100])
    await c.writer.drain()
    await c.close()
    await asyncio.sleep(0.05)
    assert count(store, inbox) == 1
    c2 = await Client.connect(server.port)
    assert msa(await c2.send(ORU_R01))[1] == "AA"
    await c2.close()


async def test_many_concurrent_connections(server, store):
    async def one(i: int) -> list[str]:
        c = await Client.connect(server.port)
        codes = []
        for j in range(3):
            raw = (
                ADT_A01.replace(b"ADT0001", f"C{i}-{j}".encode())
                .replace(b"BN000123", f"BN{i}{j}".encode())
                .replace(b"VN2024000123", f"VN{i}{j}".encode())
            )
            codes.append(msa(await c.send(raw))[1])
        await c.close()
        return codes

    results = await asyncio.gather(*(one(i) for i in range(8)))
    assert all(code == "AA" for codes in results for code in codes)
    assert count(store, processed_message) == 24


async def test_graceful_shutdown_answers_in_flight_messages(store):
    srv = MllpServer(store, port=0, workers=2)
    await srv.start()
    clients = [await Client.connect(srv.port) for _ in range(3)]
    for i, c in enumerate(clients):
        c.writer.write(frame(ORU_R01.replace(b"LAB0001", f"S{i}".encode())))
        await c.writer.drain()
    await asyncio.sleep(0.01)
    reads = [asyncio.create_task(c.read_ack()) for c in clients]
    await srv.close(timeout=30)
    acks = await asyncio.gather(*reads, return_exceptions=True)
    answered = [a for a in acks if isinstance(a, bytes)]
    assert answered and all(msa(a)[1] == "AA" for a in answered)
    assert count(store, processed_message) == len(answered)


async def test_http_ingest_routes_to_the_hl7v2_plugin(client, store):
    r = await client.post(
        "http://test/ingest/hl7v2", content=ORU_R01, headers={"Content-Type": "x-application/hl7-v2+er7"}
    )
    assert r.status_code in (200, 201), r.text
    assert store.read("Patient", deterministic_id("Patient", "01929", "BN000123")) is not None
    r = await client.post("http://test/ingest", content=ADT_A01.replace(b"ADT0001", b"H2"))
    assert r.status_code in (200, 201), r.text


async def test_same_citizen_at_two_hospitals_is_linked_after_the_acks(store):
    srv = MllpServer(store, port=0)
    port = await srv.start()
    other = ADT_A01.replace("BV_BACHMAI".encode(), b"BV_CHORAY").replace(b"ADT0001", b"ADT9001")
    c = await Client.connect(port)
    assert msa(await c.send(ADT_A01))[1] == "AA"
    assert msa(await c.send(other))[1] == "AA"
    await c.close()
    await srv.close()  # shutdown links whatever the background linker had not reached
    with store.engine.connect() as conn:
        patients = [
            r for (r,) in conn.execute(select(resource.c.res_id).where(resource.c.res_type == "Patient"))
        ]
    assert len(patients) == 2
    assert set(linked_patient_ids(store, patients[0])) == set(patients)

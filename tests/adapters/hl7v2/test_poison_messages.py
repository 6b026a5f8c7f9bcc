"""A message carrying a value the store cannot take gets AE naming the field; its neighbours get AA."""

from __future__ import annotations

import asyncio

import pytest

from adapters.hl7v2.mllp import MllpServer
from adapters.repository import dead_letter
from tests.adapters.hl7v2.samples import ADT_A01
from tests.adapters.hl7v2.test_mllp import Client, count, err_segments, msa


@pytest.fixture
async def server(store):
    srv = MllpServer(store, port=0, max_bytes=64 * 1024, workers=4)
    await srv.start()
    yield srv
    await srv.close()


def _numbered(i: int, j: int = 0) -> bytes:
    return (
        ADT_A01.replace(b"ADT0001", f"C{i}-{j}".encode())
        .replace(b"BN000123", f"BN{i}{j}".encode())
        .replace(b"VN2024000123", f"VN{i}{j}".encode())
    )


NUL_IN_NAME = _numbered(99).replace("NGUYỄN^VĂN AN".encode(), "NGUYỄN^VĂN\x00AN".encode())


async def test_nul_in_pid_5_gets_ae_naming_pid_5_and_one_dead_letter(server, store):
    c = await Client.connect(server.port)
    ack = await c.send(NUL_IN_NAME)
    assert msa(ack)[1] == "AE"
    [err] = err_segments(ack)
    assert err.startswith("ERR||PID^1^5|102^") and "U+0000" in err
    assert count(store, dead_letter) == 1
    assert await c.send(NUL_IN_NAME) == ack  # answered the same, not retried: the sender must fix it
    assert count(store, dead_letter) == 1
    await c.close()


async def test_hex_escaped_nul_is_refused_too(server):
    c = await Client.connect(server.port)
    ack = await c.send(_numbered(98).replace("NGUYỄN^VĂN AN".encode(), b"NGUYEN^VAN\\X00\\AN"))
    assert msa(ack)[1] == "AE" and err_segments(ack)[0].startswith("ERR||PID^1^5|102^")
    await c.close()


async def test_overlong_patient_identifier_gets_ae_naming_pid_3(server):
    c = await Client.connect(server.port)
    ack = await c.send(_numbered(97).replace(b"BN970^", b"BN" + b"7" * 5000 + b"^"))
    assert msa(ack)[1] == "AE" and err_segments(ack)[0].startswith("ERR||PID^1^3|102^")
    await c.close()


async def test_a_poison_message_among_concurrent_connections_spoils_no_other(server, store):
    async def one(i: int) -> list[str]:
        c = await Client.connect(server.port)
        codes = [msa(await c.send(_numbered(i, j)))[1] for j in range(5)]
        await c.close()
        return codes

    async def poison() -> list[str]:
        c = await Client.connect(server.port)
        codes = [msa(await c.send(NUL_IN_NAME))[1] for _ in range(5)]
        await c.close()
        return codes

    *good, bad = await asyncio.gather(*(one(i) for i in range(7)), poison())
    assert all(code == "AA" for codes in good for code in codes)
    assert bad == ["AE"] * 5

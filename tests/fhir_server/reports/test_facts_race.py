"""Racing writers of one visit (a corrected diagnosis, a moved patient) never fail on the facts table, and the
fact ends as its last resources say."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from fhir_server.reports.hook import attach_reports

from .visits import BINH_DUONG, HA_NOI, visit_bundle


@pytest.fixture(autouse=True)
def _facts(store):
    attach_reports(store)


async def test_racing_resends_of_one_visit_leave_one_consistent_fact(live_server, store):
    async with httpx.AsyncClient(base_url=live_server, timeout=60) as client:
        first = await client.post(
            "", json=visit_bundle(1, name="Trần Thị Bích", home=BINH_DUONG, icd="J18.9")
        )
        assert first.status_code == 200, first.text

        async def resend(i: int) -> int:
            # even: the hospital corrects the diagnosis; odd: the patient moved to Hà Nội
            body = visit_bundle(
                1,
                name="Trần Thị Bích",
                home=HA_NOI if i % 2 else BINH_DUONG,
                icd="A91" if i % 2 == 0 else "J18.9",
            )
            r = await client.post("", json=body)
            return r.status_code

        statuses = await asyncio.gather(*(resend(i) for i in range(16)))
    assert set(statuses) == {200}
    patient = store.read("Patient", "bn-1")
    condition = store.read("Condition", "dx-1")
    assert patient is not None and condition is not None

    province = next(
        x["valueCoding"]["code"]
        for x in orjson.loads(patient.content)["address"][0]["extension"]
        if x["url"].endswith("vn-ext-province")
    )
    code = orjson.loads(condition.content)["code"]["coding"][0]["code"]
    (fact,) = store.reports.aggregate(["province_new", "icd_code"], ["visits"])
    assert (fact["province_new"], fact["icd_code"], fact["visits"]) == (province, code, 1)

"""Racing writers of one patient's visits around a re-exam appointment (PostgreSQL): the file that gives
the appointment, eight visits in its window written over the FHIR API and a deletion, all at once; whatever
order the transactions commit in, kept / missed ends exactly as a full recompute says.

Note: with `match_reexams`' advisory lock removed this test still passed (3 runs): the row locks on
report_reexam and on the rollup cells serialize these writers too. It checks the outcome, not the lock."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from sqlalchemy import select

from fhir_server.reports.hook import attach_reports, rebuild
from fhir_server.storage.sql.reports import report_reexam

from .qd130_visits import qd130_visit

EARLIER = dt.date(2024, 1, 10)  # a visit before it all: creates the patient
VISIT = dt.date(2024, 3, 15)  # the visit that gives the appointment
HEN = dt.date(2024, 4, 28)  # the re-exam date (window −3/+7 days: April and May)
# Each racing visit lands in its own summary cell (month × visit class): writers of one cell wait for each
# other on its rollup row, which would serialize them and hide the race.
CLASSES = ("AMB", "IMP", "EMER", "HH", "VR", "OBSENC", "SS", "PRENC")
ROUNDS = 10  # one patient each
WRITERS = 8
STAGGER = 0.02  # seconds between the writers' starts: spread over the ingest's own transaction


@pytest.fixture(autouse=True)
def _facts(store, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: nothing races")
    attach_reports(store)


def _reexam_rows(store) -> dict[str, tuple]:
    c = report_reexam.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(c.appointment_id, c.facility, c.origin_day, c.kept_by)).all()
    return {r[0]: tuple(r[1:]) for r in rows}


async def test_racing_visit_ingests_and_a_delete_leave_the_reexams_as_a_full_recompute(live_server, store):
    root = live_server.removesuffix("/fhir")
    async with httpx.AsyncClient(timeout=120) as client:

        async def ingest(payload: bytes) -> None:
            r = await client.post(f"{root}/ingest/qd130", content=payload)
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text

        async def put(visit: dict, after: float = 0.0) -> None:
            await asyncio.sleep(after)
            r = await client.put(
                f"{live_server}/Encounter/{visit['id']}",
                json=visit,
                headers={"Content-Type": "application/fhir+json"},
            )
            assert r.status_code in (200, 201), r.text

        for n in range(1, ROUNDS + 1):
            await ingest(qd130_visit(n, EARLIER, "KB00"))  # the patient, and an Encounter to copy
            found = await client.get(
                f"{live_server}/Encounter", params={"subject:Patient.identifier": f"0790900{n:05d}"}
            )
            (template,) = [e["resource"] for e in found.json()["entry"]]
            template.pop("meta", None)

            def visit(i: int, day: dt.date) -> dict:
                # another visit of the same patient, written over the FHIR API; its own summary cell
                when = day.isoformat()
                return {
                    **template,
                    "id": f"race-{n}-{i}",
                    "identifier": [],
                    "period": {"start": when, "end": when},
                    "class": {**template["class"], "code": CLASSES[i % len(CLASSES)]},
                }

            doomed = visit(WRITERS, HEN)
            await put(doomed)

            async def delete() -> None:
                r = await client.delete(f"{live_server}/Encounter/{doomed['id']}")
                assert r.status_code in (200, 204), r.text

            # the file that gives the appointment, visits on every day of its window, and a deletion
            await asyncio.gather(
                ingest(qd130_visit(n, VISIT, reexam=HEN)),
                delete(),
                *(put(visit(i, HEN + dt.timedelta(days=i - 3)), after=i * STAGGER) for i in range(WRITERS)),
            )

    raced = _reexam_rows(store)
    assert len(raced) == ROUNDS
    assert all(kept is not None for _facility, _origin, kept in raced.values())
    rebuild(store)  # what `lienthong report rebuild` computes from the committed visits alone
    assert raced == _reexam_rows(store)

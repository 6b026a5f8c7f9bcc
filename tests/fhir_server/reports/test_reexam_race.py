"""Racing writers of one patient's visits and re-exam appointment (PostgreSQL) end as a full recompute says.

Two tests: a free-for-all (the file that gives the appointment, eight visits in its window over the FHIR
API and a deletion, all at once), and the one interleaving `match_reexams`' per-patient advisory lock
exists for, forced step by step. With the lock removed the second fails (checked) and the first still
passes: row locks on report_reexam and on the rollup cells serialize most writers on their own."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import httpx
import orjson
import pytest
from sqlalchemy import select

from adapters.pipeline import ingest
from fhir_server.reports.hook import _Unit, attach_reports, listener, rebuild
from fhir_server.search.run import run_search
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
def _postgresql_only(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: nothing races")


def _reexam_rows(store) -> dict[str, tuple]:
    c = report_reexam.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(c.appointment_id, c.facility, c.origin_day, c.kept_by)).all()
    return {r[0]: tuple(r[1:]) for r in rows}


async def test_racing_visit_ingests_and_a_delete_leave_the_reexams_as_a_full_recompute(live_server, store):
    attach_reports(store)
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


def _ids(store, res_type: str) -> list[str]:
    bundle = orjson.loads(run_search(store, res_type, [("_count", "100")], "http://test/fhir", max_count=100))
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []))


def test_a_visit_committed_while_its_appointment_is_being_written_still_keeps_it(store, db_url):
    """The interleaving the lock exists for, made to happen: the appointment's transaction has inserted its
    row and matched (no visit yet) but not committed; the keeping visit's transaction then writes its fact
    and matches. It must wait for the appointment's commit: without the lock it sees no row to update,
    commits, and the appointment ends 'missed' although its visit is stored."""
    ingest(store, qd130_visit(1, VISIT, reexam=HEN), source="test", adapter="qd130")
    (giving,) = _ids(store, "Encounter")
    ingest(store, qd130_visit(1, HEN, "KB10"), source="test", adapter="qd130")
    (keeper,) = [e for e in _ids(store, "Encounter") if e != giving]
    (appointment,) = _ids(store, "Appointment")
    refresh = listener(store)
    with store.engine.begin() as conn:  # the giving visit's fact, committed before the race
        refresh(_Unit(conn), [("Encounter", giving)])

    visit_done = threading.Event()

    def write_visit(pid_box: list[int]) -> None:
        with store.engine.begin() as conn:
            pid_box.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            refresh(_Unit(conn), [("Encounter", keeper)])
        visit_done.set()

    def visit_waits_on_a_lock(pid: int) -> bool:
        with store.engine.connect() as conn:
            state = conn.exec_driver_sql(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).scalar_one_or_none()
        return state == "Lock"

    with store.engine.begin() as conn:  # the appointment's transaction
        refresh(_Unit(conn), [("Appointment", appointment)])
        box: list[int] = []
        visit = threading.Thread(target=write_visit, args=(box,))
        visit.start()
        # commit only once the visit's transaction has either finished or is waiting for this one
        while not visit_done.is_set() and not (box and visit_waits_on_a_lock(box[0])):
            visit_done.wait(0.05)
    visit.join(timeout=60)
    assert visit_done.is_set()

    raced = _reexam_rows(store)
    assert raced[appointment][2] == keeper
    rebuild(store)
    assert raced == _reexam_rows(store)

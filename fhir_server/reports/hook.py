"""Keep the visit facts current: an on_flush listener recomputes the facts of every Encounter whose own
resource, diagnosis Condition or Patient the transaction wrote, inside that transaction.

A re-sent QĐ130 file that changes a diagnosis rewrites the Condition (same id, new code): its Encounter's
fact is recomputed in the same commit, so no summary ever counts the old code. `lienthong report rebuild`
recomputes everything (after a bulk load with the hook off, or an upgrade).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from fhir_server.reports.facts import _ref_id, fact_of, principal_condition_id
from fhir_server.reports.reexam import ReexamRule, patient_of, reexam_row

Key = tuple[str, str]


def refresh_encounters(repo, unit, encounter_ids: list[str]) -> int:
    """Recompute (or drop) the facts of these Encounters from their current resources; returns rows written."""
    if not encounter_ids:
        return 0
    repo.lock(unit, encounter_ids)
    encounters = {
        k[1]: orjson.loads(v)
        for k, v in repo.contents(unit, [("Encounter", i) for i in encounter_ids]).items()
    }
    related: list[Key] = []
    for enc in encounters.values():
        pid = _ref_id(enc.get("subject"), "Patient")
        cid = principal_condition_id(enc)
        oid = _ref_id(enc.get("serviceProvider"), "Organization")
        related += [k for k in (("Patient", pid), ("Condition", cid), ("Organization", oid)) if k[1]]
    found = {k: orjson.loads(v) for k, v in repo.contents(unit, related).items()} if related else {}
    rows = []
    for eid, enc in encounters.items():
        pid = _ref_id(enc.get("subject"), "Patient")
        cid = principal_condition_id(enc)
        oid = _ref_id(enc.get("serviceProvider"), "Organization")
        fact = fact_of(
            enc,
            found.get(("Patient", pid)) if pid else None,
            found.get(("Condition", cid)) if cid else None,
            found.get(("Organization", oid)) if oid else None,
        )
        rows.append(fact.row())
    gone = [i for i in encounter_ids if i not in encounters]
    repo.replace(unit, rows, gone)
    return len(rows)


def affected_encounters(repo, unit, keys: list[Key]) -> list[str]:
    """Encounters whose fact may change when these keys were written."""
    enc_ids = {i for t, i in keys if t == "Encounter"}
    cond_keys = [k for k in keys if k[0] == "Condition"]
    if cond_keys:
        for content in repo.contents(unit, cond_keys).values():
            enc = _ref_id(orjson.loads(content).get("encounter"), "Encounter")
            if enc:
                enc_ids.add(enc)
    pat_ids = [i for t, i in keys if t == "Patient"]
    enc_ids.update(repo.encounters_of_patients(unit, pat_ids))
    return sorted(enc_ids)


def refresh_appointments(repo, unit, appointment_ids: list[str], rule: ReexamRule) -> set[str]:
    """Recompute (or drop) the re-exam rows of these Appointments; returns the patients to match again."""
    if not appointment_ids:
        return set()
    patients = repo.reexam_patients(unit, appointment_ids)
    appts = {
        k[1]: orjson.loads(v)
        for k, v in repo.contents(unit, [("Appointment", i) for i in appointment_ids]).items()
    }
    pids = {a: patient_of(appt) for a, appt in appts.items()}
    found = repo.contents(unit, [("Patient", p) for p in pids.values() if p])
    rows = []
    for aid, appt in appts.items():
        pid = pids[aid]
        content = found.get(("Patient", pid)) if pid else None
        row = reexam_row(appt, orjson.loads(content) if content else None, rule)
        if row is not None:
            rows.append(row)
    kept = {r["appointment_id"] for r in rows}
    repo.replace_reexams(unit, rows, [i for i in appointment_ids if i not in kept])
    return patients | {r["patient_id"] for r in rows}


def listener(store, rule: ReexamRule | None = None) -> Callable[[object, list[Key]], None]:
    """The on_flush listener for one store."""
    repo = store.reports
    rule = rule or ReexamRule()

    def refresh(unit, keys: list[Key]) -> None:
        if not any(t in ("Encounter", "Condition", "Patient", "Appointment", "Person") for t, _ in keys):
            return  # most flushes (Observations, claims…) touch no fact: one scan of the keys
        encounters = affected_encounters(repo, unit, keys)
        patients = repo.patients_of_encounters(unit, encounters)  # before: a visit may change patient
        refresh_encounters(repo, unit, encounters)
        patients |= repo.patients_of_encounters(unit, encounters)
        appointments = {i for t, i in keys if t == "Appointment"}
        appointments.update(repo.appointments_of_patients(unit, [i for t, i in keys if t == "Patient"]))
        patients |= refresh_appointments(repo, unit, sorted(appointments), rule)
        if rule.any_facility:  # a new or undone identity link joins or splits two hospitals' records
            patients |= repo.patients_of_persons(unit, [i for t, i in keys if t == "Person"])
        repo.match_reexams(unit, patients, rule.any_facility)

    return refresh


def attach_reports(store, rule: ReexamRule | None = None) -> None:
    """Keep `store`'s visit facts, their rollup and the re-exam rows current on every write."""
    store.reports.ensure_rollup()
    store.on_flush(listener(store, rule))


def rebuild(store, progress: Callable[[int], None] | None = None, rule: ReexamRule | None = None) -> int:
    """Recompute the facts of every current Encounter, then every re-exam row (one transaction per batch);
    returns the number of visits."""
    total = 0
    for ids in store.reports.encounter_ids():
        with store.engine.begin() as conn:
            total += refresh_encounters(store.reports, _Unit(conn), ids)
        if progress:
            progress(len(ids))
    store.reports.rebuild_rollup()  # whatever the rollup held before, it now matches the facts exactly
    rule = rule or ReexamRule()
    for ids in store.reports.appointment_ids():
        with store.engine.begin() as conn:
            unit = _Unit(conn)
            store.reports.match_reexams(
                unit, refresh_appointments(store.reports, unit, ids, rule), rule.any_facility
            )
    return total


class _Unit:
    """A bare connection in a transaction, as the repository expects a unit of work."""

    def __init__(self, conn) -> None:
        self.conn = conn

"""PV1 -> Encounter (segment maps PV1[Encounter] and MSH[Encounter]) and XCN -> Practitioner."""

from __future__ import annotations

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, datetime_, practitioner, tables, visit_identifier
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, content_error
from adapters.ids import deterministic_id

V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def add_practitioner(b: BundleBuilder, comps: list[str]) -> str | None:
    """XCN -> Practitioner resource in the bundle; returns its reference."""
    found = practitioner(comps, b.ctx)
    if not found:
        return None
    key, body = found
    return b.put("Practitioner", (key,), body)


def _status(msg: Message, pv1: Segment, has_end: bool) -> str:
    trigger = msg.trigger
    table = tables()["event_encounter_status"]
    if trigger == "A11":
        return table["A11"]
    if has_end:
        return "finished"
    if trigger in table and trigger != "A08":
        return table[trigger]
    # A08 (and ORU/ORM/VXU context): derive from the visit itself, since a PUT replaces the stored status.
    return "planned" if pv1.get(2).upper() == "P" else "in-progress"


def encounter_ref(b: BundleBuilder, msg: Message) -> str | None:
    """Reference to the visit's Encounter (same deterministic id as ADT) without writing it."""
    pv1 = msg.first("PV1")
    visit = visit_identifier(pv1, 19, b.ctx) if pv1 else None
    return (
        f"Encounter/{deterministic_id('Encounter', b.ctx.facility, 'visit', visit['value'])}"
        if visit
        else None
    )


def map_encounter(
    b: BundleBuilder, msg: Message, patient_ref: str, org_ref: str | None, required: bool
) -> str | None:
    """PV1 -> Encounter keyed on the visit number (PV1-19); None when absent and not required."""
    ctx = b.ctx
    pv1 = msg.first("PV1")
    visit = visit_identifier(pv1, 19, ctx) if pv1 else None
    if visit is None:
        if required:
            where = "PV1-19" if pv1 else "PV1"
            raise content_error(REQUIRED_FIELD_MISSING, where, "visit number (PV1-19) missing")
        return None
    start = datetime_(pv1.get(44), ctx, "PV1-44")
    end = datetime_(pv1.get(45), ctx, "PV1-45")
    res: dict = {"identifier": [visit], "status": _status(msg, pv1, bool(end))}
    pclass = pv1.get(2).upper()
    mapped = tables()["patient_class"].get(pclass)
    if mapped:
        res["class"] = {"system": V3_ACT, **mapped}
    elif pclass:
        res["class"] = {"system": "http://terminology.hl7.org/CodeSystem/v2-0004", "code": pclass}
    else:
        res["class"] = {"system": V3_ACT, "code": "AMB", "display": "ambulatory"}
    admission = codeable_concept(pv1.comps(4)[:2] + ["HL70007"] if pv1.get(4) else [])
    if admission:
        res["type"] = [admission]
    service = codeable_concept(
        pv1.comps(10)[:2] + [f"{ctx.local_base}/{ctx.facility}/service"] if pv1.get(10) else []
    )
    if service:
        res["serviceType"] = service
    res["subject"] = {"reference": patient_ref}
    participants = []
    for n, code in ((7, "ATND"), (8, "REF"), (9, "CON"), (17, "ADM")):
        for i in range(len(pv1.reps(n))):
            ref = add_practitioner(b, pv1.comps(n, i))
            if ref:
                participants.append(
                    {
                        "type": [{"coding": [{"system": V3_PARTICIPATION, "code": code}]}],
                        "individual": {"reference": ref},
                    }
                )
    if participants:
        res["participant"] = participants
    if start or end:
        res["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    disposition = codeable_concept(pv1.comps(36)[:2] + ["HL70112"] if pv1.get(36) else [])
    if disposition:
        res["hospitalization"] = {"dischargeDisposition": disposition}
    loc = [c for c in pv1.comps(3)[:4] if c]
    if loc:
        # Locations are kept as display text: bed/room codes are local and not worth a resource each.
        res["location"] = [
            {"location": {"display": " / ".join(loc)}, "status": "completed" if end else "active"}
        ]
    if org_ref:
        res["serviceProvider"] = {"reference": org_ref}
    return b.put("Encounter", ("visit", visit["value"]), res)

"""PV1/PV2 -> Encounter (segment maps PV1[Encounter], PV2[Encounter], MSH[Encounter]) and XCN -> Practitioner."""

from __future__ import annotations

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, datetime_, practitioner, tables, visit_identifier
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING
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
    if trigger in ("A11", "A23", "A27", "A38"):  # cancellations win over whatever PV1 still says
        return table[trigger]
    if has_end:
        return "finished"
    if trigger in table:
        return table[trigger]
    # A08 (and person-level events with a visit): derive from the visit itself, since a PUT replaces the
    # stored status and the IG's "unknown = keep" cannot be expressed.
    return tables()["patient_class_status"].get(pv1.get(2).upper(), "in-progress")


def encounter_key(b: BundleBuilder, pv1: Segment | None) -> tuple | None:
    """The natural key of the visit: PV1-19 visit number (None without one)."""
    visit = visit_identifier(pv1, 19, b.ctx) if pv1 is not None else None
    return ("visit", visit["value"]) if visit else None


def encounter_ref(b: BundleBuilder, pv1: Segment | None) -> str | None:
    """Reference to the visit's Encounter (same deterministic id as ADT) without writing it."""
    key = encounter_key(b, pv1)
    return f"Encounter/{deterministic_id('Encounter', b.ctx.facility, *key)}" if key else None


def _derived_key(b: BundleBuilder, msg: Message, pv1: Segment, patient_key: str) -> tuple:
    """No PV1-19: facility + patient + admit time (PV1-44), else + MSH-10, so the visit is still stored."""
    admitted = pv1.get(44)
    if admitted:
        b.warn(
            REQUIRED_FIELD_MISSING,
            "PV1-19",
            "visit number (PV1-19) missing: encounter identified by patient and admit time (PV1-44)",
        )
        return ("derived", patient_key, admitted)
    b.warn(
        REQUIRED_FIELD_MISSING,
        "PV1-19",
        "visit number (PV1-19) and admit time (PV1-44) missing: encounter identified by this message (MSH-10)",
    )
    return ("derived", patient_key, "msh-10", msg.control_id)


def map_encounter(
    b: BundleBuilder, msg: Message, pv1: Segment, patient_ref: str, patient_key: str, org_ref: str | None
) -> str:
    """PV1 (+ PV2, + MRG-5 for A06/A07) -> Encounter keyed on the visit number or a derived key."""
    ctx = b.ctx
    visit = visit_identifier(pv1, 19, ctx)
    key = ("visit", visit["value"]) if visit else _derived_key(b, msg, pv1, patient_key)
    start = b.datetime(pv1.get(44), "PV1-44")
    end = datetime_(pv1.get(45), ctx, "PV1-45")  # strict: a discharge time decides "finished"
    res: dict = {}
    if visit:
        res["identifier"] = [visit]
    res["status"] = _status(msg, pv1, bool(end))
    pclass = pv1.get(2).upper()
    mapped = tables()["patient_class"].get(pclass)
    if mapped:
        res["class"] = {"system": V3_ACT, **mapped}
    elif pclass:
        res["class"] = {"system": "http://terminology.hl7.org/CodeSystem/v2-0004", "code": pclass}
    else:
        res["class"] = {"system": V3_ACT, "code": "AMB", "display": "ambulatory"}
    admission = _coded(pv1, 4, "HL70007")
    if admission:
        res["type"] = [admission]
    service = _coded(pv1, 10, f"{ctx.local_base}/{ctx.facility}/service")
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
    disposition = _coded(pv1, 36, "HL70112")
    if disposition:
        res["hospitalization"] = {"dischargeDisposition": disposition}
    locations = _locations(pv1, bool(end))
    if locations:
        res["location"] = locations
    if org_ref:
        res["serviceProvider"] = {"reference": org_ref}
    pv2 = _following(msg, pv1, "PV2")
    if pv2 is not None:
        reason = codeable_concept(pv2.comps(3))
        if reason:
            res["reasonCode"] = [reason]
            b.use(pv2)
    mrg = _following(msg, pv1, "MRG", before=True)
    if mrg is not None and msg.trigger in ("A06", "A07") and mrg.get(5):
        # The visit was renumbered with the class change: keep the prior number as an old identifier.
        prior = visit_identifier(mrg, 5, ctx)
        res.setdefault("identifier", []).append(dict(prior, use="old"))
        b.use(mrg)
    ref = b.put("Encounter", key, res)
    b.use(pv1, ref)
    return ref


def _coded(seg: Segment, n: int, system: str) -> dict | None:
    """A code^text field of a known table (PV1-4 0007, PV1-10 local, PV1-36 0112) -> CodeableConcept."""
    if not seg.get(n):
        return None
    code, text = (seg.comps(n) + [""])[:2]
    return codeable_concept([code, text, system])


def _locations(pv1: Segment, ended: bool) -> list[dict]:
    """PV1-3 current (or last) location; PV1-6 prior location (A02 transfer) as a completed stay."""
    out = []
    for n, status in ((3, "completed" if ended else "active"), (6, "completed")):
        loc = [c for c in pv1.comps(n)[:4] if c]
        if loc:
            # Locations are kept as display text: bed/room codes are local and not worth a resource each.
            out.append({"location": {"display": " / ".join(loc)}, "status": status})
    return out


def _following(msg: Message, pv1: Segment, name: str, before: bool = False) -> Segment | None:
    """The `name` segment of the same visit group: right after PV1 (or, for MRG, between PID and PV1)."""
    segs = msg.segments
    if before:
        for seg in reversed(segs[: pv1.index]):
            if seg.name == name:
                return seg
            if seg.name == "PID":
                return None
        return None
    for seg in segs[pv1.index + 1 :]:
        if seg.name == name:
            return seg
        if seg.name in ("PV1", "PID", "ORC", "OBR"):
            return None
    return None

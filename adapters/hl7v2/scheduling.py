"""SIU^S12-S26: SCH + TQ1 + AIS/AIG/AIL/AIP -> Appointment (segment maps SCH/AIS/AIG/AIL/AIP[Appointment]).

VN use: re-examination appointments ("hẹn tái khám", SCH-7 FOLLOWUP) and scheduled procedures.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, entity_identifier, tables
from adapters.hl7v2.encounter import add_practitioner
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, TABLE_VALUE_NOT_FOUND, content_error
from adapters.hl7v2.subjects import Subjects
from adapters.ids import deterministic_id
from fhir_server.text import nfc

V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
# Appointment.status -> participant.status of the people and places booked for it.
_PARTICIPANT_STATUS = {"pending": "tentative", "waitlist": "tentative", "proposed": "needs-action"}
_DECLINED = ("cancelled", "noshow", "entered-in-error")


def map_appointments(b: BundleBuilder, msg: Message, subjects: Subjects) -> list[str]:
    """The SCH of the message -> one Appointment keyed on the filler (else placer) appointment id."""
    sch = msg.first("SCH")
    if sch is None:
        raise content_error(
            REQUIRED_FIELD_MISSING, "SCH", f"{msg.message_code}^{msg.trigger} without an SCH segment"
        )
    ctx = b.ctx
    placer = entity_identifier(sch.comps(1), ctx, "appointment-placer")
    filler = entity_identifier(sch.comps(2), ctx, "appointment-filler")
    if not (placer or filler):
        raise content_error(
            REQUIRED_FIELD_MISSING, "SCH-2", "no filler (SCH-2) or placer (SCH-1) appointment id"
        )
    status = _status(b, msg, sch)
    res: dict = {"identifier": [i for i in (placer, filler) if i], "status": status}
    reason = sch.comps(7)
    if reason and reason[0].upper() in tables()["appointment_reason_codes"]:
        coding = {"system": V2_0276, "code": reason[0].upper()}
        res["appointmentType"] = {
            "coding": [coding],
            **({"text": nfc(reason[1])} if len(reason) > 1 and reason[1] else {}),
        }
    reasons = [
        cc
        for cc in (
            codeable_concept(sch.comps(6)),
            None if "appointmentType" in res else codeable_concept(reason),
        )
        if cc
    ]
    if reasons:
        res["reasonCode"] = reasons
    services = [cc for s in msg.all("AIS") for cc in [codeable_concept(s.comps(3))] if cc]
    if services:
        res["serviceType"] = services
    start, end = _times(b, msg, sch)
    if start:
        res["start"] = start
    if end:
        res["end"] = end
    minutes = _minutes(sch.get(9), sch.get(10, 1))
    if minutes:
        res["minutesDuration"] = minutes
    if not (start and end) and status not in ("proposed", "cancelled", "waitlist"):
        b.warn(
            REQUIRED_FIELD_MISSING, "TQ1-7", "appointment without start and end time (TQ1-7/8, SCH-11, AIS-4)"
        )
    based_on = []
    for n, kind in ((26, "PLAC"), (27, "FILL")):
        if sch.get(n):
            rid = deterministic_id("ServiceRequest", ctx.facility, "order", f"{kind}:{sch.get(n)}")
            based_on.append({"reference": f"ServiceRequest/{rid}"})
    if based_on:
        res["basedOn"] = based_on
    booked: list[Segment] = []
    res["participant"] = _participants(b, msg, subjects, sch, status, booked)
    if not res["participant"]:
        raise content_error(REQUIRED_FIELD_MISSING, "PID", "appointment without a patient or booked resource")
    key = f"FILL:{filler['value']}" if filler else f"PLAC:{placer['value']}"
    ref = b.put("Appointment", ("sch", key), res)
    # The AIx segments (and the RGS resource-group headers) became parts of this Appointment: notes
    # under them are appointment comments.
    for seg in [sch, *booked, *msg.all("RGS")]:
        b.use(seg, ref)
    return [ref]


def _status(b: BundleBuilder, msg: Message, sch: Segment) -> str:
    """Trigger (S15 cancelled, S17 deleted, S26 no-show) first, else SCH-25 filler status, else booked."""
    fixed = tables()["appointment_trigger_status"].get(msg.trigger)
    if fixed:
        return fixed
    code = sch.get(25).upper()
    if not code:
        return "booked"
    status = tables()["appointment_status"].get(code)
    if status is None:
        b.warn(TABLE_VALUE_NOT_FOUND, "SCH-25", f"unknown filler status {sch.get(25)!r}: booked")
        return "booked"
    return status


def _times(b: BundleBuilder, msg: Message, sch: Segment) -> tuple[str | None, str | None]:
    """TQ1-7/8 (v2.5+), else SCH-11 TQ start/end (older), else the first AIS-4 + AIS-7 duration."""
    tq1 = next((s for s in msg.segments[sch.index + 1 :] if s.name in ("TQ1", "PID")), None)
    if tq1 is not None and tq1.name == "TQ1" and tq1.get(7):
        b.use(tq1)
        return b.datetime(tq1.get(7), "TQ1-7"), b.datetime(tq1.get(8), "TQ1-8")
    if sch.get(11, 4):
        return b.datetime(sch.get(11, 4), "SCH-11.4"), b.datetime(sch.get(11, 5), "SCH-11.5")
    for ais in msg.all("AIS"):
        start = b.datetime(ais.get(4), "AIS-4")
        if start:
            minutes = _minutes(ais.get(7), ais.get(8, 1))
            return start, _plus(start, minutes)
    return None, None


def _minutes(amount: str, unit: str) -> int | None:
    """Duration and its unit (SCH-9/10, AIS-7/8: minutes by default) -> whole minutes."""
    try:
        value = float(amount)
    except ValueError:
        return None
    factor = tables()["duration_minutes"].get((unit or "MIN").upper())
    if factor is None or value <= 0:
        return None
    return max(1, round(value * factor))


def _plus(start: str, minutes: int | None) -> str | None:
    if not minutes or "T" not in start:
        return None
    return (datetime.fromisoformat(start) + timedelta(minutes=minutes)).isoformat()


def _participants(
    b: BundleBuilder, msg: Message, subjects: Subjects, sch: Segment, status: str, booked: list[Segment]
) -> list[dict]:
    """The patient, the practitioners (AIP), places (AIL) and equipment (AIG) booked."""
    declined = status in _DECLINED
    pstatus = "declined" if declined else _PARTICIPANT_STATUS.get(status, "accepted")
    out = []
    subject = subjects.of(sch)
    if subject.patient_ref:
        out.append({"actor": {"reference": subject.patient_ref}, "required": "required", "status": pstatus})
    for aip in msg.all("AIP"):
        actor = add_practitioner(b, aip.comps(3)) if aip.get(3) else None
        if actor:
            entry: dict = {"actor": {"reference": actor}, "status": pstatus}
            role = codeable_concept(aip.comps(4))
            if role:
                entry["type"] = [role]
            out.append(entry)
            booked.append(aip)
    for ail in msg.all("AIL"):
        place = " / ".join(c for c in ail.comps(3)[:4] if c)
        if place:
            # Locations are display text, as for PV1-3: room codes are local and not worth a resource.
            out.append({"actor": {"display": place}, "status": pstatus})
            booked.append(ail)
    for aig in msg.all("AIG"):
        what = codeable_concept(aig.comps(3))
        if what:
            label = what.get("text") or what["coding"][0]["code"]
            out.append({"actor": {"display": label}, "status": pstatus})
            booked.append(aig)
    for ais in msg.all("AIS"):
        if codeable_concept(ais.comps(3)):
            booked.append(ais)  # AIS-3 became serviceType, AIS-4/7 the times
    return out

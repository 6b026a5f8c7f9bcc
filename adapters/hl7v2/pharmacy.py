"""RDE^O11/O25 (and ORM RXO): ORC + RXE/RXO + RXR + TQ1 -> MedicationRequest; RDS^O13: RXD -> MedicationDispense.

Segment maps RXO[MedicationRequest], RXR[MedicationRequest], TQ1[MedicationRequest] of the IG; RXE and RXD
follow the same field meanings (the IG has no RXE/RXD map in 1.0.0).
"""

from __future__ import annotations

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, quantity
from adapters.hl7v2.encounter import add_practitioner
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, content_error
from adapters.hl7v2.orders import order_key, request_status
from adapters.hl7v2.results import order_identifiers
from adapters.hl7v2.subjects import Subjects
from adapters.ids import deterministic_id
from fhir_server.text import nfc

# Field numbers of the same facts in RXE and RXO (give code, amount min/max, units, form, instructions,
# dispense amount/units, refills, ordering provider).
_FIELDS = {
    "RXE": {
        "code": 2,
        "min": 3,
        "max": 4,
        "units": 5,
        "text": 7,
        "disp": 10,
        "disp_units": 11,
        "refills": 12,
        "provider": 13,
    },
    "RXO": {
        "code": 1,
        "min": 2,
        "max": 3,
        "units": 4,
        "text": 7,
        "disp": 11,
        "disp_units": 12,
        "refills": 13,
        "provider": 14,
    },
}


def _group(msg: Message, start: Segment) -> list[Segment]:
    """Segments after `start` up to the next order (ORC) or patient (PID): its RXR, RXC, TQ1, NTE, ..."""
    out = []
    for seg in msg.segments[start.index + 1 :]:
        if seg.name in ("ORC", "PID", "RXO", "RXE", "RXD"):
            break
        out.append(seg)
    return out


def _timing(b: BundleBuilder, tq1: Segment | None, rx: Segment) -> dict:
    """TQ1 (v2.5+) or RXE-1 TQ (older): repeat pattern as code text, start/end as boundsPeriod."""
    if tq1 is not None:
        pattern, start, end = tq1.get(3), tq1.get(7), tq1.get(8)
        start_where, end_where = "TQ1-7", "TQ1-8"
    elif rx.name == "RXE" and rx.get(1, 2) + rx.get(1, 4):
        pattern, start, end = rx.get(1, 2), rx.get(1, 4), rx.get(1, 5)
        start_where, end_where = "RXE-1.4", "RXE-1.5"
    else:
        return {}
    timing: dict = {}
    if pattern:
        timing["code"] = {"text": pattern}
    bounds = {
        k: v for k, v in (("start", b.datetime(start, start_where)), ("end", b.datetime(end, end_where))) if v
    }
    if bounds:
        timing["repeat"] = {"boundsPeriod": bounds}
    if timing and tq1 is not None:
        b.use(tq1)
    return {"timing": timing} if timing else {}


def _dosage(b: BundleBuilder, rx: Segment, group: list[Segment], where: str) -> dict:
    """Give amount/units, instructions, route/site (RXR), timing (TQ1) -> one Dosage."""
    f = _FIELDS[rx.name]
    dosage: dict = {}
    # Administration instructions are CWE: the text (component 2) when coded, else the first component.
    texts = []
    for i in range(len(rx.reps(f["text"]))):
        text = rx.get(f["text"], 2, i) or rx.get(f["text"], 1, i)
        if text:
            texts.append(nfc(text))
    if texts:
        dosage["text"] = "; ".join(texts)
    units = rx.comps(f["units"])
    low, high = rx.get(f["min"]), rx.get(f["max"])
    if low and high and low != high:
        dosage["doseAndRate"] = [
            {
                "doseRange": {
                    "low": quantity(low, units, f"{where}-{f['min']}"),
                    "high": quantity(high, units, f"{where}-{f['max']}"),
                }
            }
        ]
    elif low:
        dosage["doseAndRate"] = [{"doseQuantity": quantity(low, units, f"{where}-{f['min']}")}]
    tq1 = next((s for s in group if s.name == "TQ1"), None)
    dosage.update(_timing(b, tq1, rx))
    rxr = next((s for s in group if s.name == "RXR"), None)
    if rxr is not None:
        route = codeable_concept(rxr.comps(1))
        if route:
            dosage["route"] = route
        site = codeable_concept(rxr.comps(2))
        if site:
            dosage["site"] = site
        b.use(rxr)
    return dosage


def medication_request_ref(b: BundleBuilder, key: str) -> str:
    """Reference of the MedicationRequest with this order key (same id whichever message writes it)."""
    return f"MedicationRequest/{deterministic_id('MedicationRequest', b.ctx.facility, 'rx', key)}"


def _rx_key(b: BundleBuilder, ids: list[dict], rx: Segment, subject, where: str) -> str:
    key = order_key(ids)
    if key:
        return key
    prescription = rx.get(15) if rx.name == "RXE" else ""
    if prescription:
        return f"RX:{prescription}"
    b.warn(
        REQUIRED_FIELD_MISSING,
        f"{where}",
        "no placer/filler order number (ORC-2/3) or prescription number: order identified by patient and drug",
    )
    f = _FIELDS[rx.name]
    return f"derived:{subject.patient_key}|{rx.get(f['code'])}"


def map_medication_request(
    b: BundleBuilder, msg: Message, subjects: Subjects, orc: Segment | None, rx: Segment
) -> str:
    """ORC + RXE (or RXO) + RXR/TQ1 -> MedicationRequest keyed on the order (else prescription) number."""
    where = rx.name
    f = _FIELDS[rx.name]
    subject = subjects.patient_of(rx, "a medication order")
    medication = codeable_concept(rx.comps(f["code"]))
    if not medication:
        raise content_error(REQUIRED_FIELD_MISSING, f"{where}-{f['code']}", "give code (the drug) missing")
    ids, _ = order_identifiers(orc, None, b.ctx)
    key = _rx_key(b, ids, rx, subject, where)
    if rx.name == "RXE" and rx.get(15):
        ids.append({"system": b.ctx.local_system("prescription"), "value": rx.get(15)})
    res: dict = {
        "status": request_status(b, orc, "ORC"),
        "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": {"reference": subject.patient_ref},
    }
    if ids:
        res["identifier"] = ids
    if subject.encounter_ref:
        res["encounter"] = {"reference": subject.encounter_ref}
    authored = b.datetime(orc.get(9), "ORC-9") if orc is not None else None
    if authored:
        res["authoredOn"] = authored
    requester = add_practitioner(b, orc.comps(12)) if orc is not None and orc.get(12) else None
    requester = requester or (add_practitioner(b, rx.comps(f["provider"])) if rx.get(f["provider"]) else None)
    if requester:
        res["requester"] = {"reference": requester}
    if rx.name == "RXE":
        reasons = [cc for cc in (codeable_concept(rx.comps(27, i)) for i in range(len(rx.reps(27)))) if cc]
        if reasons:
            res["reasonCode"] = reasons
    group = _group(msg, rx)
    if orc is not None:
        # Order timing (TQ1 between ORC and RXE) after the pharmacy's encoded timing (TQ1 after RXE).
        group += [s for s in msg.segments[orc.index + 1 : rx.index] if s.name == "TQ1"]
    dosage = _dosage(b, rx, group, where)
    if dosage:
        res["dosageInstruction"] = [dosage]
    dispense: dict = {}
    amount = rx.get(f["disp"])
    if amount:
        dispense["quantity"] = quantity(amount, rx.comps(f["disp_units"]), f"{where}-{f['disp']}")
    refills = rx.get(f["refills"])
    if refills.isdigit():
        dispense["numberOfRepeatsAllowed"] = int(refills)
    if dispense:
        res["dispenseRequest"] = dispense
    ref = b.put("MedicationRequest", ("rx", key), res)
    b.use(orc, ref)
    b.use(rx, ref)
    return ref


def map_pharmacy_orders(b: BundleBuilder, msg: Message, subjects: Subjects) -> list[str]:
    """RDE: every RXE (with the ORC before it) -> MedicationRequest."""
    refs = []
    orc = None
    requested: list[Segment] = []
    for seg in msg.segments:
        if seg.name == "ORC":
            orc, requested = seg, []
        elif seg.name == "RXO":
            requested.append(seg)
        elif seg.name == "RXE":
            ref = map_medication_request(b, msg, subjects, orc, seg)
            # RDE's RXO is the order as requested; RXE, as the pharmacy encoded it, is what we keep.
            for rxo in requested:
                b.use(rxo, ref)
            refs.append(ref)
            orc, requested = None, []
    if not refs:
        raise content_error(
            REQUIRED_FIELD_MISSING, "RXE", f"{msg.message_code}^{msg.trigger} without an RXE segment"
        )
    return refs


def map_dispenses(b: BundleBuilder, msg: Message, subjects: Subjects) -> list[str]:
    """RDS: every RXD -> MedicationDispense (authorizingPrescription = the order's MedicationRequest)."""
    refs = []
    orc: Segment | None = None
    order_ref: str | None = None
    for seg in msg.segments:
        if seg.name == "ORC":
            orc, order_ref = seg, None
        elif seg.name in ("RXE", "RXO"):
            order_ref = map_medication_request(b, msg, subjects, orc, seg)
        elif seg.name == "RXD":
            refs.append(_dispense(b, msg, subjects, orc, seg, order_ref, len(refs) + 1))
    if not refs:
        raise content_error(
            REQUIRED_FIELD_MISSING, "RXD", f"{msg.message_code}^{msg.trigger} without an RXD segment"
        )
    return refs


def _dispense(
    b: BundleBuilder,
    msg: Message,
    subjects: Subjects,
    orc: Segment | None,
    rxd: Segment,
    order_ref: str | None,
    index: int,
) -> str:
    where = f"RXD[{index}]"
    subject = subjects.patient_of(rxd, "a dispense")
    medication = codeable_concept(rxd.comps(2))
    if not medication:
        raise content_error(REQUIRED_FIELD_MISSING, f"{where}-2", "dispense/give code (the drug) missing")
    ids, _ = order_identifiers(orc, None, b.ctx)
    okey = order_key(ids)
    prescription = rxd.get(7)
    if okey is None and not prescription:
        raise content_error(
            REQUIRED_FIELD_MISSING, f"{where}-7", "no order number (ORC-2/3) or prescription number"
        )
    res: dict = {
        "status": "completed",
        "medicationCodeableConcept": medication,
        "subject": {"reference": subject.patient_ref},
    }
    if prescription:
        res["identifier"] = [{"system": b.ctx.local_system("prescription"), "value": prescription}]
    if subject.encounter_ref:
        res["context"] = {"reference": subject.encounter_ref}
    if order_ref is None and okey:
        order_ref = medication_request_ref(b, okey)
    if order_ref:
        res["authorizingPrescription"] = [{"reference": order_ref}]
    amount = rxd.get(4)
    if amount:
        res["quantity"] = quantity(amount, rxd.comps(5), f"{where}-4")
    handed = b.datetime(rxd.get(3), f"{where}-3")
    if handed:
        res["whenHandedOver"] = handed
    performer = add_practitioner(b, rxd.comps(10)) if rxd.get(10) else None
    if performer:
        res["performer"] = [{"actor": {"reference": performer}}]
    notes = [nfc(rxd.get(9, 2, i) or rxd.get(9, 1, i)) for i in range(len(rxd.reps(9)))]
    if any(notes):
        res["note"] = [{"text": n} for n in notes if n]
    rxr = next((s for s in _group(msg, rxd) if s.name == "RXR"), None)
    route = codeable_concept(rxr.comps(1)) if rxr is not None else None
    if route:
        res["dosageInstruction"] = [{"route": route}]
        b.use(rxr)
    key = (okey or f"RX:{prescription}", rxd.get(1) or str(index), rxd.get(3))
    ref = b.put("MedicationDispense", ("rxd", *key), res)
    b.use(rxd, ref)
    b.use(orc)
    return ref

"""ORM^O01 / OML^O21 / OMG^O19: ORC + OBR -> ServiceRequest, SPM -> Specimen, ORC + RXO -> MedicationRequest.

Segment maps ORC[ServiceRequest], OBR[ServiceRequest], SPM[Specimen], RXO[MedicationRequest].
"""

from __future__ import annotations

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, quantity, tables
from adapters.hl7v2.encounter import add_practitioner
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, TABLE_VALUE_NOT_FOUND, content_error
from adapters.hl7v2.results import order_groups, order_identifiers, specimen
from adapters.hl7v2.subjects import Subjects


def request_status(b: BundleBuilder, orc: Segment | None, where: str) -> str:
    """ORC-5 order status (table 0038), else ORC-1 order control (table 0119) -> request status.

    Neither is ever a reason to refuse the order: a code outside the tables gives "unknown" and a warning."""
    if orc is None:
        return "active"
    order_status = orc.get(5).upper()
    if order_status:
        mapped = tables()["order_status"].get(order_status)
        if mapped is not None:
            return mapped
        b.warn(
            TABLE_VALUE_NOT_FOUND,
            f"{where}-5",
            f"{order_status!r} is not an order status (table 0038): status taken from ORC-1",
        )
    control = orc.get(1).upper()
    if not control:
        return "active"
    mapped = tables()["order_control_status"].get(control)
    if mapped is None:
        b.warn(TABLE_VALUE_NOT_FOUND, f"{where}-1", f"unknown order control code {control!r}: status unknown")
        return "unknown"
    return mapped


def order_key(ids: list[dict]) -> str | None:
    """Placer number first (the orderer owns the order), else filler."""
    placer = [i["value"] for i in ids if i["type"]["coding"][0]["code"] == "PLAC"]
    if placer:
        return f"PLAC:{placer[0]}"
    return f"FILL:{ids[0]['value']}" if ids else None


def map_orders(b: BundleBuilder, msg: Message, subjects: Subjects) -> list[str]:
    """Every ORC with its OBR (or its RXO / ODS / RQD detail) -> ServiceRequest / MedicationRequest /
    NutritionOrder / SupplyRequest keyed on the order number."""
    from adapters.hl7v2.pharmacy import map_medication_request  # pharmacy imports this module

    ctx = b.ctx
    groups = order_groups(msg, "OBR")
    if not groups and not msg.first("RXO"):
        raise content_error(REQUIRED_FIELD_MISSING, "ORC", "order message without ORC/OBR")
    refs = []
    spm_index = 0
    for gi, (orc, obr, children) in enumerate(groups, start=1):
        where = f"ORC[{gi}]" if orc is not None else f"OBR[{gi}]"
        subject = subjects.patient_of(orc or obr, "orders")
        if obr is None and orc is not None:
            detail = _detail(msg, orc)
            if detail is not None and detail.name == "RXO":
                continue  # a pharmacy order: mapped below
            if detail is not None:
                ref = _DETAIL_MAPPERS[detail.name](b, msg, orc, detail, subject, where)
                if ref:
                    refs.append(ref)
                continue
        ids, _ = order_identifiers(orc, obr, ctx)
        code = codeable_concept(obr.comps(4)) if obr is not None else None
        if not code:
            raise content_error(
                REQUIRED_FIELD_MISSING, f"OBR[{gi}]-4", "universal service identifier missing"
            )
        key = order_key(ids) or fallback_order_key(b, orc, obr, subject, where)
        res: dict = {
            "identifier": ids,
            "status": request_status(b, orc, where),
            "intent": "order",
            "code": code,
            "subject": {"reference": subject.patient_ref},
        }
        if not ids:
            del res["identifier"]
        if subject.encounter_ref:
            res["encounter"] = {"reference": subject.encounter_ref}
        priority = (obr.get(27, 6) or (orc.get(7, 6) if orc else "") or obr.get(5)).upper()
        if priority in tables()["priority"]:
            res["priority"] = tables()["priority"][priority]
        occurrence = b.datetime(obr.get(6), f"OBR[{gi}]-6")
        if occurrence:
            res["occurrenceDateTime"] = occurrence
        authored = b.datetime(orc.get(9), f"{where}-9") if orc is not None else None
        if authored:
            res["authoredOn"] = authored
        requester = add_practitioner(b, (orc.comps(12) if orc is not None and orc.get(12) else obr.comps(16)))
        if requester:
            res["requester"] = {"reference": requester}
        reasons = [cc for cc in (codeable_concept(obr.comps(31, i)) for i in range(len(obr.reps(31)))) if cc]
        if reasons:
            res["reasonCode"] = reasons
        specimens = []
        for seg in children:
            if seg.name == "SPM":
                spm_index += 1
                specimens.append({"reference": specimen(b, seg, key, spm_index, subject.patient_ref)})
        if specimens:
            res["specimen"] = specimens
        ref = b.put("ServiceRequest", ("order", key), res)
        b.use(orc, ref)
        b.use(obr, ref)
        refs.append(ref)
    for seg in msg.segments:
        if seg.name == "RXO":
            refs.append(map_medication_request(b, msg, subjects, _orc_before(msg, seg), seg))
    return refs


def fallback_order_key(
    b: BundleBuilder, orc: Segment | None, obr: Segment | None, subject, where: str
) -> str:
    """No placer/filler number: the placer group number (ORC-4) plus the test, else patient + test + time."""
    test = obr.get(4) if obr is not None else ""
    group = orc.get(4) if orc is not None else ""
    if group:
        b.warn(
            REQUIRED_FIELD_MISSING,
            f"{where}-2",
            "no placer or filler order number: order identified by its placer group number (ORC-4) and test",
        )
        return f"GRP:{group}|{test}"
    when = (obr.get(7) or obr.get(6) if obr is not None else "") or (orc.get(9) if orc is not None else "")
    b.warn(
        REQUIRED_FIELD_MISSING,
        f"{where}-2",
        "no placer or filler order number: order identified by patient, test (OBR-4) and time",
    )
    return f"derived:{subject.patient_key}|{test}|{when}"


def _detail(msg: Message, orc: Segment) -> Segment | None:
    """The order-detail segment of an ORC without OBR: RXO (pharmacy), ODS (diet), RQD (supply)."""
    for nxt in msg.segments[orc.index + 1 :]:
        if nxt.name in ("NTE", "PRT", "TQ1", "TQ2", "CTD"):
            continue
        return nxt if nxt.name in ("RXO", "ODS", "RQD") else None
    return None


def _nutrition(b: BundleBuilder, msg: Message, orc: Segment, ods: Segment, subject, where: str) -> str | None:
    """ORC + ODS (diet D, supplement S, preference P) -> NutritionOrder (IG: order-detail choice)."""
    codes = [cc for cc in (codeable_concept(ods.comps(3, i)) for i in range(len(ods.reps(3)))) if cc]
    instructions = [ods.get(4, 1, i) for i in range(len(ods.reps(4))) if ods.get(4, 1, i)]
    ids, _ = order_identifiers(orc, None, b.ctx)
    key = order_key(ids) or fallback_order_key(b, orc, None, subject, where)
    when = b.datetime(orc.get(9), f"{where}-9") or b.datetime(msg.msh.get(7), "MSH-7")
    res: dict = {
        "status": request_status(b, orc, where),
        "intent": "order",
        "patient": {"reference": subject.patient_ref},
        "dateTime": when,
    }
    if ids:
        res["identifier"] = ids
    if subject.encounter_ref:
        res["encounter"] = {"reference": subject.encounter_ref}
    kind = ods.get(1).upper()
    if kind == "S":
        res["supplement"] = [{"type": cc} for cc in codes] or [{"instruction": "; ".join(instructions)}]
    elif kind == "P":
        res["foodPreferenceModifier"] = codes
    else:
        diet: dict = {}
        if codes:
            diet["type"] = codes
        if instructions:
            diet["instruction"] = "; ".join(instructions)
        res["oralDiet"] = diet
    ref = b.put("NutritionOrder", ("ods", key), res)
    b.use(orc, ref)
    b.use(ods, ref)
    return ref


_SUPPLY_STATUS = {"revoked": "cancelled", "on-hold": "suspended", "draft": "draft"}


def _supply(b: BundleBuilder, msg: Message, orc: Segment, rqd: Segment, subject, where: str) -> str | None:
    """ORC + RQD (requisition detail) -> SupplyRequest (IG: order-detail choice)."""
    item = codeable_concept(rqd.comps(2)) or codeable_concept(rqd.comps(4)) or codeable_concept(rqd.comps(3))
    amount = rqd.get(5)
    if not item or not amount:
        b.warn(
            REQUIRED_FIELD_MISSING,
            "RQD-2",
            "requisition item (RQD-2) or quantity (RQD-5) missing: RQD not mapped",
        )
        b.use(rqd)
        return None
    ids, _ = order_identifiers(orc, None, b.ctx)
    key = order_key(ids) or fallback_order_key(b, orc, None, subject, where)
    status = request_status(b, orc, where)
    res: dict = {
        "status": _SUPPLY_STATUS.get(
            status, status if status in ("active", "completed", "entered-in-error") else "unknown"
        ),
        "itemCodeableConcept": item,
        "quantity": quantity(amount, rqd.comps(6), "RQD-5"),
    }
    if ids:
        res["identifier"] = ids
    needed = b.datetime(rqd.get(10), "RQD-10")
    if needed:
        res["occurrenceDateTime"] = needed
    authored = b.datetime(orc.get(9), f"{where}-9")
    if authored:
        res["authoredOn"] = authored
    requester = add_practitioner(b, orc.comps(12)) if orc.get(12) else None
    if requester:
        res["requester"] = {"reference": requester}
    ref = b.put("SupplyRequest", ("rqd", key, rqd.get(1)), res)
    b.use(orc, ref)
    b.use(rqd, ref)
    return ref


_DETAIL_MAPPERS = {"ODS": _nutrition, "RQD": _supply}


def _orc_before(msg: Message, seg: Segment) -> Segment | None:
    """The ORC that opens the order group of `seg`."""
    for prev in reversed(msg.segments[: seg.index]):
        if prev.name == "ORC":
            return prev
        if prev.name in ("PID", "OBR", "RXO", "RXE", "RXD"):
            return None
    return None

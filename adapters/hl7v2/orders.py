"""ORM^O01 / OML^O21: ORC + OBR -> ServiceRequest, SPM -> Specimen (maps ORC/OBR[ServiceRequest], SPM)."""

from __future__ import annotations

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, datetime_, tables
from adapters.hl7v2.encounter import add_practitioner
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, TABLE_VALUE_NOT_FOUND, content_error
from adapters.hl7v2.results import order_groups, order_identifiers


def _status(orc: Segment | None, where: str) -> str:
    if orc is None:
        return "active"
    order_status = orc.get(5).upper()
    if order_status:
        mapped = tables()["order_status"].get(order_status)
        if mapped is None:
            raise content_error(TABLE_VALUE_NOT_FOUND, f"{where}-5", f"unknown order status {order_status!r}")
        return mapped
    control = orc.get(1).upper()
    mapped = tables()["order_control_status"].get(control)
    if mapped is None:
        raise content_error(TABLE_VALUE_NOT_FOUND, f"{where}-1", f"unknown order control code {control!r}")
    return mapped


def _specimen(b: BundleBuilder, spm: Segment, order_key: str, index: int, patient_ref: str) -> str:
    """SPM -> Specimen (identifier, type, collection time)."""
    ctx = b.ctx
    where = f"SPM[{index}]"
    spec_id = spm.get(2) or spm.get(2, 2)
    res: dict = {"subject": {"reference": patient_ref}}
    if spec_id:
        res["identifier"] = [{"system": ctx.local_system("specimen"), "value": spec_id}]
    stype = codeable_concept(spm.comps(4))
    if stype:
        res["type"] = stype
    collected = datetime_(spm.get(17), ctx, f"{where}-17")
    if collected:
        res["collection"] = {"collectedDateTime": collected}
    return b.put("Specimen", ("spm", order_key, spec_id or spm.get(1) or str(index)), res)


def map_orders(b: BundleBuilder, msg: Message, patient_ref: str, encounter_ref: str | None) -> list[str]:
    """Every ORC (with its OBR) -> ServiceRequest keyed on the placer (else filler) order number."""
    ctx = b.ctx
    groups = order_groups(msg, "OBR")
    if not groups:
        raise content_error(REQUIRED_FIELD_MISSING, "ORC", "order message without ORC/OBR")
    refs = []
    spm_index = 0
    for gi, (orc, obr, children) in enumerate(groups, start=1):
        where = f"ORC[{gi}]" if orc is not None else f"OBR[{gi}]"
        ids, _ = order_identifiers(orc, obr, ctx)
        placer = [i["value"] for i in ids if i["type"]["coding"][0]["code"] == "PLAC"]
        key = f"PLAC:{placer[0]}" if placer else (f"FILL:{ids[0]['value']}" if ids else None)
        if key is None:
            raise content_error(REQUIRED_FIELD_MISSING, f"{where}-2", "no placer or filler order number")
        code = codeable_concept(obr.comps(4)) if obr is not None else None
        if not code:
            raise content_error(
                REQUIRED_FIELD_MISSING, f"OBR[{gi}]-4", "universal service identifier missing"
            )
        res: dict = {
            "identifier": ids,
            "status": _status(orc, where),
            "intent": "order",
            "code": code,
            "subject": {"reference": patient_ref},
        }
        if encounter_ref:
            res["encounter"] = {"reference": encounter_ref}
        priority = (obr.get(27, 6) or (orc.get(7, 6) if orc else "")).upper()
        if priority in tables()["priority"]:
            res["priority"] = tables()["priority"][priority]
        occurrence = datetime_(obr.get(6), ctx, f"OBR[{gi}]-6")
        if occurrence:
            res["occurrenceDateTime"] = occurrence
        authored = datetime_(orc.get(9), ctx, f"{where}-9") if orc is not None else None
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
                specimens.append({"reference": _specimen(b, seg, key, spm_index, patient_ref)})
        if specimens:
            res["specimen"] = specimens
        refs.append(b.put("ServiceRequest", ("order", key), res))
    return refs

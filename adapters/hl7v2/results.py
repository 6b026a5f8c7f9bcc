"""ORU^R01: OBR -> DiagnosticReport, OBX -> Observation (segment maps OBR[DiagnosticReport], OBX[Observation])."""

from __future__ import annotations

import re

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import (
    V2_0203,
    Context,
    codeable_concept,
    datetime_,
    quantity,
    structured_numeric,
    tables,
)
from adapters.hl7v2.er7 import Message, Segment, split_components, unescape
from adapters.hl7v2.errors import DATA_TYPE_ERROR, REQUIRED_FIELD_MISSING, content_error
from fhir_server.text import nfc

OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_RANGE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*-\s*([+-]?\d+(?:\.\d+)?)\s*$")


def order_groups(msg: Message, head: str) -> list[tuple[Segment | None, Segment | None, list[Segment]]]:
    """Group segments into (ORC, <head> segment, following OBX/NTE/...) triples in message order."""
    groups: list[tuple[Segment | None, Segment | None, list[Segment]]] = []
    pending_orc: Segment | None = None
    for seg in msg.segments:
        if seg.name == "ORC":
            if pending_orc is not None:
                groups.append((pending_orc, None, []))
            pending_orc = seg
        elif seg.name == head:
            groups.append((pending_orc, seg, []))
            pending_orc = None
        elif groups and groups[-1][1] is not None and seg.name not in ("PID", "PV1", "PD1", "PV2", "NK1"):
            groups[-1][2].append(seg)
    if pending_orc is not None:
        groups.append((pending_orc, None, []))
    return groups


def order_identifiers(
    orc: Segment | None, obr: Segment | None, ctx: Context
) -> tuple[list[dict], str | None]:
    """Placer/filler numbers (ORC-2/3 first, else OBR-2/3) -> identifiers and the natural order key."""
    ids: list[dict] = []
    key = None
    for kind, n in (("PLAC", 2), ("FILL", 3)):
        value = (orc.get(n) if orc else "") or (obr.get(n) if obr else "")
        if value:
            ids.append(
                {
                    "type": {"coding": [{"system": V2_0203, "code": kind}]},
                    "system": ctx.local_system("placer" if kind == "PLAC" else "filler"),
                    "value": value,
                }
            )
            key = key if kind == "PLAC" and key else f"{kind}:{value}"
    # Prefer the filler number as key (the result's own number); placer otherwise.
    filler = [i for i in ids if i["type"]["coding"][0]["code"] == "FILL"]
    if filler:
        key = f"FILL:{filler[0]['value']}"
    return ids, key


def _value(obx: Segment, where: str, ctx: Context) -> dict:
    """OBX-5 per OBX-2 value type -> value[x] (or components when OBX-5 repeats)."""
    vtype = obx.get(2).upper()
    reps = obx.reps(5)
    if not reps:
        return {}
    if vtype not in tables()["value_types"]:
        raise content_error(DATA_TYPE_ERROR, f"{where}-2", f"unsupported OBX value type {vtype!r}")
    units = obx.comps(6)
    enc = ctx.encoding
    values = []
    for i, rep in enumerate(reps):
        w = f"{where}-5" + (f"[{i + 1}]" if len(reps) > 1 else "")
        if vtype == "NM":
            values.append({"valueQuantity": quantity(split_components(rep, enc)[0], units, w)})
        elif vtype in ("ST", "TX", "FT"):
            # Text values may legitimately contain component separators: keep the whole repetition.
            values.append({"valueString": nfc(unescape(rep, enc))})
        elif vtype in ("CE", "CWE", "CNE", "CF", "IS"):
            cc = codeable_concept(split_components(rep, enc))
            if cc:
                values.append({"valueCodeableConcept": cc})
        elif vtype == "SN":
            values.append(structured_numeric(split_components(rep, enc), units, w))
        elif vtype in ("DT", "DTM", "TS"):
            values.append({"valueDateTime": datetime_(split_components(rep, enc)[0], ctx, w)})
        elif vtype == "TM":
            values.append({"valueTime": _time(split_components(rep, enc)[0], w)})
        elif vtype == "NR":
            lo, hi = (split_components(rep, enc) + ["", ""])[:2]
            rng = {}
            if lo:
                rng["low"] = quantity(lo, units, w)
            if hi:
                rng["high"] = quantity(hi, units, w)
            values.append({"valueRange": rng})
    if len(values) == 1:
        return values[0]
    if vtype in ("ST", "TX", "FT"):
        return {"valueString": "\n".join(v["valueString"] for v in values)}
    return {"component": [{"code": {"text": f"{where}-5[{i + 1}]"}, **v} for i, v in enumerate(values)]}


def _time(value: str, where: str) -> str:
    digits = value.split("+")[0].split("-")[0]
    if not digits.isdigit() or len(digits) < 2:
        raise content_error(DATA_TYPE_ERROR, where, f"not an HL7 time: {value!r}")
    digits = (digits + "0000")[:6]
    return f"{digits[:2]}:{digits[2:4]}:{digits[4:6]}"


def _result_status(seg: Segment, field: int, table: str, where: str) -> str:
    """Map a result-status field (OBX-11, OBR-25) through its table; empty means final, unknown is AE."""
    code = seg.get(field).upper()
    status = tables()[table].get(code, "final" if not code else None)
    if status is None:
        raise content_error("103", f"{where}-{field}", f"unknown result status {code!r}")
    return status


def map_observation(
    b: BundleBuilder,
    obx: Segment,
    index: int,
    order_key: str,
    patient_ref: str,
    encounter_ref: str | None,
    default_time: str | None,
) -> str:
    """One OBX -> Observation keyed on (order, OBX-3 code, OBX-4 sub-id)."""
    ctx = b.ctx
    where = f"OBX[{index}]"
    code = codeable_concept(obx.comps(3))
    if not code:
        raise content_error(REQUIRED_FIELD_MISSING, f"{where}-3", "observation identifier (OBX-3) missing")
    status = _result_status(obx, 11, "observation_status", where)
    res: dict = {
        "status": status,
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}],
        "code": code,
        "subject": {"reference": patient_ref},
    }
    if encounter_ref:
        res["encounter"] = {"reference": encounter_ref}
    effective = datetime_(obx.get(14), ctx, f"{where}-14") or default_time
    if effective:
        res["effectiveDateTime"] = effective
    res.update(_value(obx, where, ctx))
    flag = obx.get(8).upper()
    if flag:
        mapped = tables()["interpretation"].get(flag)
        res["interpretation"] = [
            {"coding": [{"system": V3_INTERPRETATION, **mapped}]} if mapped else {"text": flag}
        ]
    ref_range = obx.text(7).strip()
    if ref_range:
        rr: dict = {"text": nfc(ref_range)}
        m = _RANGE.match(ref_range)
        q = res.get("valueQuantity")
        if m and q:
            unit = {k: q[k] for k in ("unit", "system", "code") if k in q}
            rr["low"] = {"value": float(m.group(1)) if "." in m.group(1) else int(m.group(1)), **unit}
            rr["high"] = {"value": float(m.group(2)) if "." in m.group(2) else int(m.group(2)), **unit}
        res["referenceRange"] = [rr]
    method = codeable_concept(obx.comps(17))
    if method:
        res["method"] = method
    code_key = obx.get(3) or obx.get(3, 2)
    return b.put("Observation", ("obx", order_key, code_key, obx.get(4)), res)


def map_results(b: BundleBuilder, msg: Message, patient_ref: str, encounter_ref: str | None) -> list[str]:
    """Every OBR group -> DiagnosticReport with its Observations."""
    ctx = b.ctx
    groups = [g for g in order_groups(msg, "OBR") if g[1] is not None]
    if not groups:
        raise content_error(REQUIRED_FIELD_MISSING, "OBR", "ORU^R01 without an OBR segment")
    refs = []
    obx_index = 0
    for gi, (orc, obr, children) in enumerate(groups, start=1):
        where = f"OBR[{gi}]"
        ids, key = order_identifiers(orc, obr, ctx)
        if key is None:
            raise content_error(REQUIRED_FIELD_MISSING, f"{where}-3", "no filler or placer order number")
        code = codeable_concept(obr.comps(4))
        if not code:
            raise content_error(REQUIRED_FIELD_MISSING, f"{where}-4", "universal service identifier missing")
        status = _result_status(obr, 25, "report_status", where)
        effective = datetime_(obr.get(7), ctx, f"{where}-7")
        results = []
        for seg in children:
            if seg.name == "OBX":
                obx_index += 1
                results.append(
                    {
                        "reference": map_observation(
                            b, seg, obx_index, key, patient_ref, encounter_ref, effective
                        )
                    }
                )
        res: dict = {
            "identifier": ids,
            "status": status,
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                            "code": obr.get(24) or "LAB",
                        }
                    ]
                }
            ],
            "code": code,
            "subject": {"reference": patient_ref},
        }
        if encounter_ref:
            res["encounter"] = {"reference": encounter_ref}
        if effective:
            res["effectiveDateTime"] = effective
        issued = datetime_(obr.get(22), ctx, f"{where}-22")
        if issued and "T" in issued:
            res["issued"] = issued
        if results:
            res["result"] = results
        refs.append(b.put("DiagnosticReport", ("obr", key), res))
    return refs

"""ORU^R01 / OUL^R22-R24: OBR -> DiagnosticReport, OBX -> Observation, SPM -> Specimen.

Segment maps OBR[DiagnosticReport], OBX[Observation], SPM[Specimen] of the V2-to-FHIR IG.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import (
    UCUM,
    V2_0203,
    Context,
    codeable_concept,
    datetime_,
    money,
    quantity,
    structured_numeric,
    tables,
)
from adapters.hl7v2.er7 import Message, Segment, split_components, unescape
from adapters.hl7v2.errors import (
    ACCEPTED,
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    content_error,
)
from adapters.hl7v2.subjects import Subject, Subjects
from fhir_server.text import nfc

OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
LOINC = "http://loinc.org"
BP_PANEL = "85354-9"
_BP_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*(?:mm\s*Hg)?\s*$", re.IGNORECASE)
_RANGE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*-\s*([+-]?\d+(?:\.\d+)?)\s*$")
# Segments that open a new patient or visit: they never belong to the order group above them.
_GROUP_BREAK = ("PID", "PV1", "PD1", "PV2", "NK1", "MSH")


@dataclass
class OrderGroup:
    """One ORC/<head> pair and the segments under it (OBX, NTE, SPM, ...), in message order."""

    orc: Segment | None
    head: Segment | None
    children: list[Segment] = field(default_factory=list)
    specimens: list[Segment] = field(default_factory=list)


def order_groups(msg: Message, head: str) -> list[tuple[Segment | None, Segment | None, list[Segment]]]:
    """Group segments into (ORC, <head> segment, following segments) triples; ORC comes first (ORU, ORM, VXU)."""
    return [(g.orc, g.head, g.children) for g in _groups(msg, head, orc_after=False)]


def _groups(msg: Message, head: str, orc_after: bool) -> list[OrderGroup]:
    """ORC before the head (ORU/ORM/VXU) or after it (OUL: OBR, ORC, OBX); SPM before OBR is the specimen
    of the next order (OUL^R22/R23), SPM after OBR the specimen of that order (OUL^R24, ORU v2.5)."""
    groups: list[OrderGroup] = []
    pending_orc: Segment | None = None
    pending_spm: list[Segment] = []
    for seg in msg.segments:
        current = groups[-1] if groups else None
        if seg.name == "ORC":
            if (
                orc_after
                and current
                and current.head is not None
                and current.orc is None
                and not _has_obx(current)
            ):
                current.orc = seg
                continue
            if pending_orc is not None:
                groups.append(OrderGroup(pending_orc, None))
            pending_orc = seg
        elif seg.name == head:
            groups.append(OrderGroup(pending_orc, seg, specimens=pending_spm))
            pending_orc, pending_spm = None, []
        elif seg.name == "SPM" and orc_after:
            if current and current.head is not None and not current.specimens and pending_orc is None:
                current.specimens.append(seg)  # OUL^R24: specimen of the order above
            else:
                pending_spm = [seg]
                groups.append(OrderGroup(None, None))  # closes the order above
        elif seg.name in _GROUP_BREAK:
            if current is not None and current.head is not None:
                groups.append(OrderGroup(None, None))
        elif current and current.head is not None and not pending_spm:
            current.children.append(seg)
    if pending_orc is not None:
        groups.append(OrderGroup(pending_orc, None))
    return [g for g in groups if g.orc is not None or g.head is not None]


def _has_obx(group: OrderGroup) -> bool:
    return any(c.name == "OBX" for c in group.children)


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


def _value(b: BundleBuilder, obx: Segment, where: str) -> dict:
    """OBX-5 per OBX-2 value type (tables.yaml value_types) -> value[x], or components when OBX-5 repeats."""
    ctx = b.ctx
    vtype = obx.get(2).upper()
    reps = [r for r in obx.reps(5) if r]
    if not reps:
        return {}
    kind = tables()["value_types"].get(vtype)
    if kind is None:
        b.warn(DATA_TYPE_ERROR, f"{where}-2", f"unknown OBX value type {vtype!r}: value kept as text")
        kind = "component_text" if vtype else "string"
    if kind == "not_representable":
        b.warn(
            ACCEPTED,
            f"{where}-5",
            f"OBX value type {vtype} cannot be an R4 Observation value; kept in the archived message",
        )
        return {}
    units = obx.comps(6)
    enc = ctx.encoding
    values = []
    for i, rep in enumerate(reps):
        w = f"{where}-5" + (f"[{i + 1}]" if len(reps) > 1 else "")
        comps = split_components(rep, enc)
        if kind == "quantity":
            values.append({"valueQuantity": quantity(comps[0], units, w)})
        elif kind == "string":
            # Text values may legitimately contain component separators: keep the whole repetition.
            values.append({"valueString": nfc(unescape(rep, enc))})
        elif kind == "coded":
            cc = codeable_concept(comps)
            if cc:
                values.append({"valueCodeableConcept": cc})
        elif kind == "structured_numeric":
            values.append(structured_numeric(comps, units, w))
        elif kind == "datetime":
            values.append({"valueDateTime": datetime_(comps[0], ctx, w)})
        elif kind == "time":
            values.append({"valueTime": _time(comps[0], w)})
        elif kind == "range":
            lo, hi = (comps + ["", ""])[:2]
            rng = {}
            if lo:
                rng["low"] = quantity(lo, units, w)
            if hi:
                rng["high"] = quantity(hi, units, w)
            values.append({"valueRange": rng})
        elif kind == "pointer":
            values.append({"valueString": comps[0]})
        elif kind == "money":
            amount = money(rep, enc, w)
            if amount:
                cur = amount["currency"]
                q = {"value": amount["value"], "unit": cur, "system": "urn:iso:std:iso:4217", "code": cur}
                values.append({"valueQuantity": q})
        else:  # component_text
            values.append({"valueString": nfc(" ".join(c for c in comps if c))})
    values = [v for v in values if v]
    if not values:
        return {}
    if len(values) == 1:
        return values[0]
    if kind == "string":
        return {"valueString": "\n".join(v["valueString"] for v in values)}
    # Repeated values: one component each, coded like the observation so component searches find them.
    code = codeable_concept(obx.comps(3)) or {}
    return {
        "component": [{"code": dict(code, text=f"{where}-5[{i + 1}]"), **v} for i, v in enumerate(values)]
    }


def _time(value: str, where: str) -> str:
    digits = value.split("+")[0].split("-")[0]
    if not digits.isdigit() or len(digits) < 2:
        raise content_error(DATA_TYPE_ERROR, where, f"not an HL7 time: {value!r}")
    digits = (digits + "0000")[:6]
    return f"{digits[:2]}:{digits[2:4]}:{digits[4:6]}"


def result_status(b: BundleBuilder, seg: Segment, field: int, table: str, where: str) -> str:
    """A result-status field (OBX-11, OBR-25) through its table: empty -> final, unknown -> unknown (warning)."""
    code = seg.get(field).upper()
    if not code:
        return "final"
    status = tables()[table].get(code)
    if status is None:
        b.warn(
            TABLE_VALUE_NOT_FOUND,
            f"{where}-{field}",
            f"unknown result status {code!r}: status set to unknown",
        )
        return "unknown"
    return status


def map_observation(
    b: BundleBuilder,
    obx: Segment,
    index: int,
    key: tuple,
    subject: Subject,
    default_time: str | None,
    category: str | None = "laboratory",
) -> str:
    """One OBX -> Observation keyed on (anchor, OBX-3 code, OBX-4 sub-id)."""
    where = f"OBX[{index}]"
    code = codeable_concept(obx.comps(3))
    if not code:
        raise content_error(REQUIRED_FIELD_MISSING, f"{where}-3", "observation identifier (OBX-3) missing")
    res: dict = {"status": result_status(b, obx, 11, "observation_status", where)}
    vital = _loinc(code) & set(tables()["vital_signs_loinc"])
    if vital:
        category = "vital-signs"  # also under an OBR: a monitor's ORU carries vital signs, not lab results
    if category:
        res["category"] = [
            {"coding": [{"system": OBS_CATEGORY, "code": category, "display": category.title()}]}
        ]
    res["code"] = code
    res["subject"] = {"reference": subject.patient_ref}
    if subject.encounter_ref:
        res["encounter"] = {"reference": subject.encounter_ref}
    effective = b.datetime(obx.get(14), f"{where}-14") or default_time
    if effective:
        res["effectiveDateTime"] = effective
    res.update(_value(b, obx, where))
    if BP_PANEL in vital:
        _blood_pressure_components(res)
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
    ref = b.put("Observation", ("obx", *key, code_key, obx.get(4)), res)
    b.use(obx, ref)
    return ref


def _loinc(code: dict) -> set[str]:
    """LOINC codes of a CodeableConcept."""
    return {c.get("code", "") for c in code.get("coding", []) if c.get("system") == LOINC}


def _blood_pressure_components(res: dict) -> None:
    """A BP panel sent as one value ('120/80' text, or SN 120/80 read as a ratio) -> systolic/diastolic
    components, as the R4 bp profile wants; any other value shape is left as sent."""
    spec = tables()["blood_pressure_components"]
    pair: tuple[str, str] | None = None
    if "valueRatio" in res:
        ratio = res["valueRatio"]
        pair = (str(ratio["numerator"]["value"]), str(ratio["denominator"]["value"]))
    elif "valueString" in res:
        m = _BP_TEXT.match(res["valueString"])
        pair = (m.group(1), m.group(2)) if m else None
    if pair is None:
        return
    res.pop("valueRatio", None)
    res.pop("valueString", None)
    res["component"] = [
        {
            "code": {"coding": [{"system": LOINC, "code": spec[part]}]},
            "valueQuantity": {
                "value": float(v) if "." in v else int(v),
                "unit": "mmHg",
                "system": UCUM,
                "code": spec["unit"],
            },
        }
        for part, v in (("systolic", pair[0]), ("diastolic", pair[1]))
    ]


def specimen(b: BundleBuilder, spm: Segment, order_key: str, index: int, patient_ref: str) -> str:
    """SPM -> Specimen (SPM-2 id, SPM-4 type, SPM-17 collection time, SPM-18 received time)."""
    where = f"SPM[{index}]"
    spec_id = spm.get(2) or spm.get(2, 2)
    res: dict = {"subject": {"reference": patient_ref}}
    if spec_id:
        res["identifier"] = [{"system": b.ctx.local_system("specimen"), "value": spec_id}]
    stype = codeable_concept(spm.comps(4))
    if stype:
        res["type"] = stype
    collected = b.datetime(spm.get(17), f"{where}-17")
    if collected:
        res["collection"] = {"collectedDateTime": collected}
    received = b.datetime(spm.get(18), f"{where}-18")
    if received and "T" in received:
        res["receivedTime"] = received
    ref = b.put("Specimen", ("spm", order_key, spec_id or spm.get(1) or str(index)), res)
    b.use(spm, ref)
    return ref


def map_results(b: BundleBuilder, msg: Message, subjects: Subjects, orc_after: bool = False) -> list[str]:
    """Every OBR group -> DiagnosticReport with its Observations (and Specimens)."""
    groups = [g for g in _groups(msg, "OBR", orc_after) if g.head is not None]
    if not groups:
        raise content_error(
            REQUIRED_FIELD_MISSING, "OBR", f"{msg.message_code}^{msg.trigger} without an OBR segment"
        )
    refs = []
    obx_index = spm_index = 0
    for gi, g in enumerate(groups, start=1):
        obr, orc = g.head, g.orc
        where = f"OBR[{gi}]"
        subject = subjects.patient_of(obr, "results")
        code = codeable_concept(obr.comps(4))
        if not code:
            raise content_error(REQUIRED_FIELD_MISSING, f"{where}-4", "universal service identifier missing")
        ids, key = order_identifiers(orc, obr, b.ctx)
        if key is None:
            # No order number: the report is still stored, keyed on what identifies it clinically.
            key = f"derived:{subject.patient_key}|{obr.get(4)}|{obr.get(7)}"
            b.warn(
                REQUIRED_FIELD_MISSING,
                f"{where}-3",
                "no filler or placer order number: report identified by patient, test (OBR-4) and time (OBR-7)",
            )
        status = result_status(b, obr, 25, "report_status", where)
        effective = b.datetime(obr.get(7), f"{where}-7")
        specimens = []
        for spm in [*g.specimens, *[c for c in g.children if c.name == "SPM"]]:
            spm_index += 1
            specimens.append({"reference": specimen(b, spm, key, spm_index, subject.patient_ref)})
        results = []
        for seg in g.children:
            if seg.name == "OBX":
                obx_index += 1
                if not seg.get(3) and not seg.get(3, 2):
                    # Without OBX-3 there is no observation to store; the rest of the report still is.
                    b.warn(
                        REQUIRED_FIELD_MISSING,
                        f"OBX[{obx_index}]-3",
                        "observation identifier (OBX-3) missing: this OBX is not stored",
                    )
                    b.use(seg)
                    continue
                results.append({"reference": map_observation(b, seg, obx_index, (key,), subject, effective)})
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
            "subject": {"reference": subject.patient_ref},
        }
        if not ids:
            del res["identifier"]
        if subject.encounter_ref:
            res["encounter"] = {"reference": subject.encounter_ref}
        if effective:
            res["effectiveDateTime"] = effective
        issued = b.datetime(obr.get(22), f"{where}-22")
        if issued and "T" in issued:
            res["issued"] = issued
        if specimens:
            res["specimen"] = specimens
        if results:
            res["result"] = results
        ref = b.put("DiagnosticReport", ("obr", key), res)
        b.use(obr, ref)
        b.use(orc, ref)
        refs.append(ref)
    return refs

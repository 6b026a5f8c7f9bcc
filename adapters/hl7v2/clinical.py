"""Patient-level segments of any message: DG1 -> Condition (+ Encounter.diagnosis), PR1 -> Procedure,
NK1 -> RelatedPerson / Patient.contact, PD1 -> Patient.generalPractitioner, patient-level OBX -> Observation,
AL1/IAM -> AllergyIntolerance, IN1 -> Coverage, FT1 -> ChargeItem, NTE -> note of the resource above it.

Runs after the message family's own mapper, on the segments that mapper did not use, so an OBX under an
OBR stays a lab result and only the OBX directly under PID/PV1 becomes a patient-level Observation.
Segment maps DG1[Condition], DG1[Encounter], PR1[Procedure], NK1[RelatedPerson], NK1[Patient],
PD1[Patient], OBX[Observation] of the V2-to-FHIR IG.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from adapters.facility import organization_id
from adapters.hl7v2.allergy import map_allergy
from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import (
    address,
    codeable_concept,
    entity_identifier,
    human_name_,
    identifier_rules,
    organization_name,
    tables,
    telecom,
)
from adapters.hl7v2.encounter import add_practitioner
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING
from adapters.hl7v2.financial import charge, coverage
from adapters.hl7v2.results import map_observation
from adapters.hl7v2.subjects import Subject, Subjects
from fhir_server.text import nfc

CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
DIAGNOSIS_ROLE = "http://terminology.hl7.org/CodeSystem/diagnosis-role"
SCT = "http://snomed.info/sct"
# Resource types whose `note` (Annotation) an NTE below them fills; Appointment has `comment` (string).
_NOTED = {
    "AllergyIntolerance",
    "Condition",
    "Procedure",
    "Observation",
    "ServiceRequest",
    "MedicationRequest",
    "MedicationDispense",
    "Immunization",
    "Specimen",
    "ChargeItem",
}


def map_patient_segments(b: BundleBuilder, msg: Message, subjects: Subjects) -> None:
    """Map every not-yet-used clinical segment to its resource, for the patient (and visit) it sits under."""
    counts: dict[str, int] = {}
    for seg in msg.segments:
        if seg.index in b.used or seg.name not in _HANDLERS:
            continue
        subject = subjects.of(seg)
        if subject.patient_ref is None:
            continue  # no PID in the message: stays unmapped and is reported
        counts[seg.name] = counts.get(seg.name, 0) + 1
        _HANDLERS[seg.name](b, msg, seg, subject, counts[seg.name])
    attach_notes(b, msg)


def attach_notes(b: BundleBuilder, msg: Message) -> None:
    """NTE -> note of the nearest resource above it that has notes (Appointment: comment)."""
    for seg in msg.segments:
        if seg.name != "NTE" or seg.index in b.used:
            continue
        text = nfc("\n".join(seg.get(3, 1, i) for i in range(len(seg.reps(3))) if seg.get(3, 1, i)))
        if not text:
            b.use(seg)  # an empty note carries nothing
            continue
        for prev in reversed(msg.segments[: seg.index]):
            ref = b.produced.get(prev.index)
            if prev.name in ("PID", "MSH"):
                break
            if not ref or not b.has(ref):
                continue
            rtype = ref.split("/", 1)[0]
            body = b.get(ref)
            if rtype in _NOTED:
                body.setdefault("note", []).append({"text": text})
            elif rtype == "Appointment":
                body["comment"] = f"{body['comment']}\n{text}" if body.get("comment") else text
            elif rtype == "DocumentReference":
                body["description"] = f"{body['description']}\n{text}" if body.get("description") else text
            else:
                continue
            b.use(seg)
            break


def _obx(b: BundleBuilder, msg: Message, seg: Segment, subject: Subject, index: int) -> None:
    """Patient-level OBX (height, weight, vital signs sent with ADT/SIU/REF) -> Observation.

    Keyed on the visit (or the observation time, else this message), so a new weight in a later message
    is a new Observation, not an overwrite of the previous one."""
    if not seg.get(3) and not seg.get(3, 2):
        b.warn(
            REQUIRED_FIELD_MISSING,
            f"OBX[{index}]-3",
            "observation identifier (OBX-3) missing: OBX not mapped",
        )
        b.use(seg)
        return
    anchor = subject.encounter_ref or seg.get(14) or f"msh-10:{msg.control_id}"
    map_observation(b, seg, index, ("patient", subject.patient_key, anchor), subject, None, category=None)


def _coded(seg: Segment, n: int, method_field: int | None = None) -> dict | None:
    """A CWE code; DG1-2/PR1-2 (deprecated coding method) names the system when the code has none."""
    comps = seg.comps(n)
    if comps and comps[0] and (len(comps) < 3 or not comps[2]) and method_field:
        method = seg.get(method_field).upper()
        system = tables()["diagnosis_coding_method"].get(method, method)
        if system:
            comps = (comps + ["", ""])[:2] + [system] + comps[3:]
    return codeable_concept(comps)


def _dg1(b: BundleBuilder, msg: Message, seg: Segment, subject: Subject, index: int) -> None:
    """DG1 -> Condition; in a message that writes the visit, also Encounter.diagnosis (use, rank)."""
    where = f"DG1[{index}]"
    code = _coded(seg, 3, 2)
    description = nfc(seg.text(4).strip())
    if not code and not description:
        b.warn(REQUIRED_FIELD_MISSING, f"{where}-3", "diagnosis code (DG1-3) missing: DG1 not mapped")
        b.use(seg)
        return
    code = code or {}
    if description and "text" not in code:
        code["text"] = description
    unique = entity_identifier(seg.comps(20), b.ctx, "diagnosis")
    category = "encounter-diagnosis" if subject.encounter_ref else "problem-list-item"
    res: dict = {}
    if unique:
        res["identifier"] = [unique]
    if seg.get(21).upper() in tables()["deleting_action_codes"]:
        res["verificationStatus"] = {
            "coding": [{"system": CONDITION_VERIFICATION, "code": "entered-in-error"}]
        }
    elif category == "problem-list-item":
        res["clinicalStatus"] = {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]}
    display = {"encounter-diagnosis": "Encounter Diagnosis", "problem-list-item": "Problem List Item"}[
        category
    ]
    res["category"] = [{"coding": [{"system": CONDITION_CATEGORY, "code": category, "display": display}]}]
    res["code"] = code
    res["subject"] = {"reference": subject.patient_ref}
    if subject.encounter_ref:
        res["encounter"] = {"reference": subject.encounter_ref}
    onset = b.datetime(seg.get(5), f"{where}-5")
    if onset:
        res["onsetDateTime"] = onset
    recorded = b.datetime(seg.get(19), f"{where}-19")
    if recorded:
        res["recordedDate"] = recorded
    asserter = add_practitioner(b, seg.comps(16)) if seg.get(16) else None
    if asserter:
        res["asserter"] = {"reference": asserter}
    code_key = seg.get(3) or description
    key = (
        ("dg1", "id", unique["value"])
        if unique
        else ("dg1", subject.encounter_ref or subject.patient_key, code_key)
    )
    ref = b.put("Condition", key, res)
    b.use(seg, ref)
    if subject.encounter_written and b.has(subject.encounter_ref):
        diagnosis: dict = {"condition": {"reference": ref}}
        kind = seg.get(6).upper()
        role = tables()["diagnosis_role"].get(kind)
        if kind:
            coding = [{"system": "http://terminology.hl7.org/CodeSystem/v2-0052", "code": kind}]
            if role:
                coding.insert(0, {"system": DIAGNOSIS_ROLE, **role})
            diagnosis["use"] = {"coding": coding}
        rank = seg.get(15)
        if rank.isdigit() and int(rank) > 0:
            diagnosis["rank"] = int(rank)
        b.get(subject.encounter_ref).setdefault("diagnosis", []).append(diagnosis)


def _pr1(b: BundleBuilder, msg: Message, seg: Segment, subject: Subject, index: int) -> None:
    """PR1 -> Procedure (completed: ADT/BAR report procedures that were done)."""
    where = f"PR1[{index}]"
    code = _coded(seg, 3, 2)
    description = nfc(seg.text(4).strip())
    if not code and not description:
        b.warn(REQUIRED_FIELD_MISSING, f"{where}-3", "procedure code (PR1-3) missing: PR1 not mapped")
        b.use(seg)
        return
    code = code or {}
    if description and "text" not in code:
        code["text"] = description
    unique = entity_identifier(seg.comps(19), b.ctx, "procedure")
    res: dict = {}
    if unique:
        res["identifier"] = [unique]
    res["status"] = "completed"
    category = codeable_concept(seg.comps(6))
    if category:
        res["category"] = category
    res["code"] = code
    res["subject"] = {"reference": subject.patient_ref}
    if subject.encounter_ref:
        res["encounter"] = {"reference": subject.encounter_ref}
    start = b.datetime(seg.get(5), f"{where}-5")
    minutes = seg.get(7)
    end = _plus_minutes(start, minutes) if start and "T" in start and minutes.isdigit() else None
    if start and end:
        res["performedPeriod"] = {"start": start, "end": end}
    elif start:
        res["performedDateTime"] = start
    performers = []
    for n in (8, 11, 12):
        for i in range(len(seg.reps(n))):
            actor = add_practitioner(b, seg.comps(n, i))
            if not actor:
                continue
            performer: dict = {"actor": {"reference": actor}}
            function = tables()["procedure_performer_function"].get(str(n))
            if function:
                performer["function"] = {"coding": [{"system": SCT, **function}]}
            performers.append(performer)
    if performers:
        res["performer"] = performers
    reason = codeable_concept(seg.comps(15))
    if reason:
        res["reasonCode"] = [reason]
    code_key = seg.get(3) or description
    key = (
        ("pr1", "id", unique["value"])
        if unique
        else ("pr1", subject.encounter_ref or subject.patient_key, code_key, seg.get(5))
    )
    ref = b.put("Procedure", key, res)
    b.use(seg, ref)


def _plus_minutes(start: str, minutes: str) -> str | None:
    try:
        end = datetime.fromisoformat(start) + timedelta(minutes=int(minutes))
    except ValueError:
        return None
    return end.isoformat()


def _relationships(seg: Segment) -> list[dict]:
    """NK1-3 relationship (table 0063, mapped to v3-RoleCode by the IG) and NK1-7 contact role (0131)."""
    out = []
    rel = seg.comps(3)
    if rel and rel[0]:
        mapped = tables()["relationship"].get(rel[0].upper())
        cc = {"coding": [dict(mapped)]} if mapped else codeable_concept(rel)
        if mapped and len(rel) > 1 and rel[1]:
            cc["text"] = nfc(rel[1])
        out.append(cc)
    role = seg.comps(7)
    if role and role[0]:
        out.append(
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": role[0]}]}
            | ({"text": nfc(role[1])} if len(role) > 1 and role[1] else {})
        )
    return out


def _nk1(b: BundleBuilder, msg: Message, seg: Segment, subject: Subject, index: int) -> None:
    """NK1 -> RelatedPerson; an organisation contact (employer, agency, insurer) -> Patient.contact."""
    ctx = b.ctx
    rel_code = seg.get(3).upper()
    names = [n for n in (human_name_(seg.comps(2, i)) for i in range(len(seg.reps(2)))) if n]
    telecoms = [
        cp
        for n, use in ((5, "home"), (6, "work"), (40, "home"))
        for i in range(len(seg.reps(n)))
        for cp in [telecom(seg.comps(n, i), use)]
        if cp
    ]
    addresses = [a for a in (address(seg.comps(4, i), ctx) for i in range(len(seg.reps(4)))) if a]
    org_name, _ = organization_name(seg.comps(13))
    if rel_code in tables()["nk1_organization_codes"] or (not names and org_name):
        contact: dict = {}
        relationships = _relationships(seg)
        if relationships:
            contact["relationship"] = relationships
        if names:
            contact["name"] = names[0]
        if telecoms:
            contact["telecom"] = telecoms
        if addresses:
            contact["address"] = addresses[0]
        if org_name:
            contact["organization"] = {"display": org_name}
        if not contact:
            b.use(seg)
            return
        b.get(subject.patient_ref).setdefault("contact", []).append(contact)
        b.use(seg, subject.patient_ref)
        return
    if not names:
        b.warn(REQUIRED_FIELD_MISSING, f"NK1[{index}]-2", "next of kin without a name: NK1 not mapped")
        b.use(seg)
        return
    res: dict = {"active": True, "patient": {"reference": subject.patient_ref}}
    idents = [
        {"system": ctx.local_system("related-person"), "value": seg.get(n, 1, i)}
        for n in (12, 33)
        for i in range(len(seg.reps(n)))
        if seg.get(n, 1, i)
    ]
    if idents:
        res["identifier"] = idents
    relationships = _relationships(seg)
    if relationships:
        res["relationship"] = relationships
    res["name"] = names
    if telecoms:
        res["telecom"] = telecoms
    gender = tables()["sex"].get(seg.get(15).upper()) if seg.get(15) else None
    if gender:
        res["gender"] = gender
    birth = b.datetime(seg.get(16), f"NK1[{index}]-16")
    if birth:
        res["birthDate"] = birth[:10]
    if addresses:
        res["address"] = addresses
    period = {
        k: v
        for k, v in (
            ("start", b.datetime(seg.get(8), f"NK1[{index}]-8")),
            ("end", b.datetime(seg.get(9), f"NK1[{index}]-9")),
        )
        if v
    }
    if period:
        res["period"] = period
    key = ("nk1", subject.patient_key, rel_code, names[0].get("text", ""))
    ref = b.put("RelatedPerson", key, res)
    b.use(seg, ref)


def _pd1(b: BundleBuilder, msg: Message, seg: Segment, subject: Subject, index: int) -> None:
    """PD1-3 primary facility ("nơi đăng ký KCB ban đầu") and PD1-4 primary care provider -> generalPractitioner."""
    ctx = b.ctx
    gps = []
    name, org_id = organization_name(seg.comps(3))
    if org_id and re.match(identifier_rules()["facility_code_pattern"], org_id):
        # A mã CSKCB: point at that facility's own Organization (same id its messages create), don't copy it.
        rid = organization_id(org_id)
        ref: dict = {
            "reference": f"Organization/{rid}",
            "identifier": {"system": ctx.systems["facility"], "value": org_id},
        }
        if name:
            ref["display"] = name
        gps.append(ref)
    elif name or org_id:
        body: dict = {"active": True}
        if org_id:
            body["identifier"] = [{"system": ctx.local_system("organization"), "value": org_id}]
        if name:
            body["name"] = name
        gps.append({"reference": b.put("Organization", ("pd1-3", org_id or name), body)})
    doctor = add_practitioner(b, seg.comps(4)) if seg.get(4) else None
    if doctor:
        gps.append({"reference": doctor})
    if gps:
        b.get(subject.patient_ref)["generalPractitioner"] = gps
        b.use(seg, subject.patient_ref)


def _allergy(b: BundleBuilder, msg: Message, seg: Segment, subject: Subject, index: int) -> None:
    map_allergy(b, seg, subject, index)


def _in1(b: BundleBuilder, msg: Message, seg: Segment, subject: Subject, index: int) -> None:
    coverage(b, seg, subject, index)


def _ft1(b: BundleBuilder, msg: Message, seg: Segment, subject: Subject, index: int) -> None:
    charge(b, seg, subject, None, index)


_HANDLERS = {
    "OBX": _obx,
    "DG1": _dg1,
    "PR1": _pr1,
    "NK1": _nk1,
    "PD1": _pd1,
    "AL1": _allergy,
    "IAM": _allergy,
    "IN1": _in1,
    "FT1": _ft1,
}

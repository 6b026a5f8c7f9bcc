"""AL1 / IAM -> AllergyIntolerance (segment maps AL1[AllergyIntolerance], IAM[AllergyIntolerance])."""

from __future__ import annotations

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, entity_identifier, tables
from adapters.hl7v2.er7 import Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING
from adapters.hl7v2.subjects import Subject
from fhir_server.text import nfc

CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def map_allergy(b: BundleBuilder, seg: Segment, subject: Subject, index: int) -> str | None:
    """One AL1 or IAM -> AllergyIntolerance keyed on the patient and the allergen (IAM-7 id when given)."""
    where = f"{seg.name}[{index}]"
    allergen = codeable_concept(seg.comps(3))
    if not allergen:
        b.warn(REQUIRED_FIELD_MISSING, f"{where}-3", "allergen (AL1-3/IAM-3) missing: segment not mapped")
        b.use(seg)
        return None
    t = tables()
    res: dict = {}
    is_iam = seg.name == "IAM"
    unique = entity_identifier(seg.comps(7), b.ctx, "allergy") if is_iam else None
    if unique:
        res["identifier"] = [unique]
    status = t["allergy_clinical_status"].get(seg.get(17).upper()) if is_iam else None
    clinical, verification = status or ("active", None)
    if (seg.get(6).upper() if is_iam else "") in t["deleting_action_codes"]:
        clinical, verification = None, "entered-in-error"
    if clinical:
        res["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": clinical}]}
    if verification:
        res["verificationStatus"] = {"coding": [{"system": VERIFICATION, "code": verification}]}
    kind = seg.get(2).upper()
    if kind:
        if kind in t["allergy_type"]:
            res["type"] = t["allergy_type"][kind]
        if kind in t["allergy_category"]:  # MA/MC and local codes have no FHIR category
            res["category"] = [t["allergy_category"][kind]]
    severity = seg.get(4).upper()
    criticality = t["allergy_criticality"].get(severity)
    if criticality:
        res["criticality"] = criticality
    res["code"] = allergen
    res["patient"] = {"reference": subject.patient_ref}
    if subject.encounter_ref:
        res["encounter"] = {"reference": subject.encounter_ref}
    onset = b.datetime(seg.get(11 if is_iam else 6), f"{where}-{11 if is_iam else 6}")
    if onset:
        res["onsetDateTime"] = onset
    elif is_iam and seg.get(12):
        res["onsetString"] = nfc(seg.get(12))
    if is_iam:
        recorded = b.datetime(seg.get(13), f"{where}-13")
        if recorded:
            res["recordedDate"] = recorded
    reactions = _reactions(seg, is_iam)
    if reactions:
        reaction: dict = {"manifestation": reactions}
        if severity in t["allergy_reaction_severity"]:
            reaction["severity"] = t["allergy_reaction_severity"][severity]
        res["reaction"] = [reaction]
    key = (
        ("allergy", "id", unique["value"])
        if unique
        else ("allergy", subject.patient_key, seg.get(3) or seg.get(3, 2))
    )
    ref = b.put("AllergyIntolerance", key, res)
    b.use(seg, ref)
    return ref


def _reactions(seg: Segment, is_iam: bool) -> list[dict]:
    """AL1-5 (ST, repeating) or IAM-5 (CWE, repeating) -> reaction.manifestation."""
    out = []
    for i in range(len(seg.reps(5))):
        if is_iam:
            cc = codeable_concept(seg.comps(5, i))
        else:
            text = seg.get(5, 1, i)
            cc = {"text": nfc(text)} if text else None
        if cc:
            out.append(cc)
    return out

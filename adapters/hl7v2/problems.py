"""PPR^PC1/PC2/PC3 (add / update / delete problem): PRB -> Condition on the problem list.

The IG 1.0.0 has no PPR map; PRB fields follow their HL7 v2 definitions. The problem instance id (PRB-4)
keys the Condition, so PC2 updates and PC3 deletes the Condition that PC1 created.
"""

from __future__ import annotations

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, entity_identifier, tables
from adapters.hl7v2.er7 import Message
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, content_error
from adapters.hl7v2.subjects import Subjects
from fhir_server.text import nfc

CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def map_problems(b: BundleBuilder, msg: Message, subjects: Subjects) -> list[str]:
    """Every PRB -> Condition (category problem-list-item)."""
    prbs = msg.all("PRB")
    if not prbs:
        raise content_error(
            REQUIRED_FIELD_MISSING, "PRB", f"{msg.message_code}^{msg.trigger} without a PRB segment"
        )
    refs = []
    t = tables()
    for i, prb in enumerate(prbs, start=1):
        where = f"PRB[{i}]"
        subject = subjects.patient_of(prb, "a problem")
        code = codeable_concept(prb.comps(3))
        if not code:
            raise content_error(REQUIRED_FIELD_MISSING, f"{where}-3", "problem id (PRB-3) missing")
        instance = entity_identifier(prb.comps(4), b.ctx, "problem")
        res: dict = {}
        if instance:
            res["identifier"] = [instance]
        deleted = prb.get(1).upper() in t["problem_deleting_actions"] or msg.trigger == "PC3"
        if deleted:
            res["verificationStatus"] = {
                "coding": [{"system": CONDITION_VERIFICATION, "code": "entered-in-error"}]
            }
        else:
            clinical = t["problem_clinical_status"].get(prb.get(14).upper(), "active")
            res["clinicalStatus"] = {"coding": [{"system": CONDITION_CLINICAL, "code": clinical}]}
        res["category"] = [{"coding": [{"system": CONDITION_CATEGORY, "code": "problem-list-item"}]}]
        res["code"] = code
        res["subject"] = {"reference": subject.patient_ref}
        if subject.encounter_ref:
            res["encounter"] = {"reference": subject.encounter_ref}
        onset = b.datetime(prb.get(16), f"{where}-16")
        if onset:
            res["onsetDateTime"] = onset
        elif prb.get(17):
            res["onsetString"] = nfc(prb.get(17))
        resolved = b.datetime(prb.get(9), f"{where}-9")
        if resolved and not deleted:
            res["abatementDateTime"] = resolved
        recorded = b.datetime(prb.get(7), f"{where}-7") or b.datetime(prb.get(2), f"{where}-2")
        if recorded:
            res["recordedDate"] = recorded
        key = ("prb", "id", instance["value"]) if instance else ("prb", subject.patient_key, prb.get(3))
        ref = b.put("Condition", key, res)
        b.use(prb, ref)
        refs.append(ref)
    return refs

"""REF^I12-I15: RF1 + PRD (+ DG1, OBR/OBX) -> ServiceRequest with category "patient referral".

VN use: care transfer between facilities ("chuyển tuyến"): the referring facility is the requester, the
facility or doctor referred to is the performer; a PRD-4 facility that is a mã CSKCB points at that
facility's Organization. The IG 1.0.0 has no REF message map; fields follow RF1/PRD definitions.
"""

from __future__ import annotations

import re

from adapters.facility import organization_id
from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.clinical import map_patient_segments
from adapters.hl7v2.datatypes import (
    codeable_concept,
    entity_identifier,
    human_name_,
    identifier_rules,
    tables,
)
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, TABLE_VALUE_NOT_FOUND, content_error
from adapters.hl7v2.results import map_results
from adapters.hl7v2.subjects import Subjects


def map_referrals(b: BundleBuilder, msg: Message, subjects: Subjects) -> list[str]:
    """The RF1 of the message -> ServiceRequest keyed on the originating referral id (RF1-6)."""
    rf1 = msg.first("RF1")
    if rf1 is None:
        raise content_error(
            REQUIRED_FIELD_MISSING, "RF1", f"{msg.message_code}^{msg.trigger} without an RF1 segment"
        )
    subject = subjects.patient_of(rf1, "a referral")
    ctx = b.ctx
    ids = [
        i
        for i in (
            entity_identifier(rf1.comps(6), ctx, "referral"),
            entity_identifier(rf1.comps(11), ctx, "referral-external"),
        )
        if i
    ]
    if ids:
        key = ids[0]["value"]
    else:
        key = f"derived:{subject.patient_key}|{rf1.get(7)}|{rf1.get(3)}"
        b.warn(
            REQUIRED_FIELD_MISSING,
            "RF1-6",
            "no originating referral id (RF1-6/RF1-11): referral identified by patient, date and type",
        )
    res: dict = {}
    if ids:
        res["identifier"] = ids
    res["status"] = _status(b, msg, rf1)
    res["intent"] = "order"
    res["category"] = [{"coding": [dict(tables()["referral_category"])]}]
    priority = tables()["referral_priority"].get(rf1.get(2).upper())
    if priority:
        res["priority"] = priority
    kind = codeable_concept(rf1.comps(3))
    if kind:
        res["code"] = kind
    res["subject"] = {"reference": subject.patient_ref}
    if subject.encounter_ref:
        res["encounter"] = {"reference": subject.encounter_ref}
    start = b.datetime(rf1.get(7), "RF1-7")
    end = b.datetime(rf1.get(8), "RF1-8")
    if start or end:
        res["occurrencePeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    authored = b.datetime(rf1.get(9), "RF1-9") or start
    if authored:
        res["authoredOn"] = authored
    requester, performers = _providers(b, msg)
    if requester:
        res["requester"] = requester
    if performers:
        res["performer"] = performers
    reasons = [cc for cc in (codeable_concept(rf1.comps(10, i)) for i in range(len(rf1.reps(10)))) if cc]
    if reasons:
        res["reasonCode"] = reasons
    # Diagnoses and results sent with the referral are its reasons and supporting information.
    reports = map_results(b, msg, subjects) if msg.first("OBR") else []
    map_patient_segments(b, msg, subjects)
    conditions = [ref for seg in msg.all("DG1") for ref in [b.produced.get(seg.index)] if ref]
    if conditions:
        res["reasonReference"] = [{"reference": r} for r in conditions]
    if reports:
        res["supportingInfo"] = [{"reference": r} for r in reports]
    ref = b.put("ServiceRequest", ("referral", key), res)
    b.use(rf1, ref)
    return [ref]


def _status(b: BundleBuilder, msg: Message, rf1: Segment) -> str:
    fixed = tables()["referral_trigger_status"].get(msg.trigger)
    if fixed:
        return fixed
    code = rf1.get(1).upper()
    if not code:
        return "active"
    status = tables()["referral_status"].get(code)
    if status is None:
        b.warn(TABLE_VALUE_NOT_FOUND, "RF1-1", f"unknown referral status {code!r}: status unknown")
        return "unknown"
    return status


def _providers(b: BundleBuilder, msg: Message) -> tuple[dict | None, list[dict]]:
    """PRD -> requester (PRD-1 RP) and performers (RT, CP): the doctor (PRD-2) or, without one, the facility."""
    requester = None
    performers = []
    t = tables()
    for prd in msg.all("PRD"):
        role = prd.get(1).upper()
        if role not in t["referral_requester_roles"] and role not in t["referral_performer_roles"]:
            continue
        ref = _provider(b, prd)
        if ref is None:
            continue
        b.use(prd)
        if role in t["referral_requester_roles"] and requester is None:
            requester = ref
        elif role in t["referral_performer_roles"]:
            performers.append(ref)
    return requester, performers


def _provider(b: BundleBuilder, prd: Segment) -> dict | None:
    ctx = b.ctx
    name = human_name_(prd.comps(2))
    provider_id = prd.get(7)
    place = prd.comps(4) + [""] * 9
    facility, label = place[3], place[8]  # PL.4 facility (a mã CSKCB in VN), PL.9 description
    if name or provider_id:
        body: dict = {}
        if provider_id:
            body["identifier"] = [{"system": ctx.local_system("practitioner"), "value": provider_id}]
        if name:
            body["name"] = [name]
        key = provider_id or f"name:{name['text']}"
        return {"reference": b.put("Practitioner", (key,), body)}
    if facility:
        if re.match(identifier_rules()["facility_code_pattern"], facility):
            rid = organization_id(facility)
            ref = {
                "reference": f"Organization/{rid}",
                "identifier": {"system": ctx.systems["facility"], "value": facility},
            }
            return ref | ({"display": label} if label else {})
        return {"display": label or facility}
    return None

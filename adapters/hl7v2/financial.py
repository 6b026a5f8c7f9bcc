"""BAR^P01/P02/P05/P06/P12, DFT^P03/P11: PID-18 -> Account, FT1 -> ChargeItem; IN1 -> Coverage (any message).

Segment maps PID[Account], MRG[Account], IN1[Coverage] of the V2-to-FHIR IG; FT1 -> ChargeItem follows
the FT1 field meanings (the IG 1.0.0 has no financial message map). The visit itself belongs to ADT:
financial messages only reference it.
"""

from __future__ import annotations

import re

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, identifier_rules, money, organization_name, tables
from adapters.hl7v2.encounter import add_practitioner
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import ACCEPTED, DATA_TYPE_ERROR, REQUIRED_FIELD_MISSING, Hl7Error, content_error
from adapters.hl7v2.subjects import Subject, Subjects
from fhir_server.text import nfc

COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"


def account(b: BundleBuilder, number: str, patient_ref: str | None, status: str, seg: Segment) -> str:
    """An Account keyed on the patient account number (PID-18, MRG-3)."""
    res: dict = {
        "identifier": [{"system": b.ctx.local_system("account"), "value": number}],
        "status": status,
    }
    if patient_ref:
        res["subject"] = [{"reference": patient_ref}]
    ref = b.put("Account", ("account", number), res)
    b.use(seg, ref)
    return ref


def map_accounts(
    b: BundleBuilder, msg: Message, subjects: Subjects, status: str = "active"
) -> dict[int, str]:
    """PID-18 of every PID -> Account (segment map PID[Account]); returns {PID index: Account ref}."""
    out = {}
    for pid in msg.all("PID"):
        number = pid.get(18)
        if number:
            out[pid.index] = account(b, number, subjects.of(pid).patient_ref, status, pid)
    return out


def map_financial(b: BundleBuilder, msg: Message, subjects: Subjects) -> list[str]:
    """Account from PID-18 (status per trigger), every FT1 -> ChargeItem on it."""
    status = tables()["account_status"].get(msg.trigger, "active")
    accounts = map_accounts(b, msg, subjects, status)
    if not msg.first("PID"):
        raise content_error(REQUIRED_FIELD_MISSING, "PID", "PID segment missing")
    refs = list(accounts.values())
    pid_index = None
    for i, seg in enumerate(msg.all("FT1"), start=1):
        for prev in reversed(msg.segments[: seg.index]):
            if prev.name == "PID":
                pid_index = prev.index
                break
        ref = charge(b, seg, subjects.patient_of(seg, "a charge"), accounts.get(pid_index), i)
        if ref:
            refs.append(ref)
    if not refs and msg.trigger in ("P02", "P06"):
        raise content_error(REQUIRED_FIELD_MISSING, "PID-18", "patient account number missing")
    return refs


def charge(
    b: BundleBuilder, ft1: Segment, subject: Subject, account_ref: str | None, index: int
) -> str | None:
    """FT1 -> ChargeItem: FT1-7 (else FT1-25) code, FT1-10 quantity, FT1-11/12 amounts, FT1-4 date."""
    where = f"FT1[{index}]"
    kind = ft1.get(6).upper()
    status = tables()["charge_status"].get(kind) if kind else "billable"
    if status is None:
        b.warn(ACCEPTED, f"{where}-6", f"transaction type {kind!r} is not a charge: FT1 not mapped")
        b.use(ft1)
        return None
    code = codeable_concept(ft1.comps(7)) or codeable_concept(ft1.comps(25))
    if not code:
        b.warn(
            REQUIRED_FIELD_MISSING, f"{where}-7", "transaction code (FT1-7/FT1-25) missing: FT1 not mapped"
        )
        b.use(ft1)
        return None
    res: dict = {}
    transaction_id = ft1.get(2)
    if transaction_id:
        res["identifier"] = [{"system": b.ctx.local_system("transaction"), "value": transaction_id}]
    res["status"] = status
    res["code"] = code
    res["subject"] = {"reference": subject.patient_ref}
    if subject.encounter_ref:
        res["context"] = {"reference": subject.encounter_ref}
    when = b.datetime(ft1.get(4), f"{where}-4")
    if when:
        res["occurrenceDateTime"] = when
    quantity = ft1.get(10)
    if quantity:
        if re.fullmatch(r"[+-]?\d+(\.\d+)?", quantity):
            res["quantity"] = {"value": float(quantity) if "." in quantity else int(quantity)}
        else:
            b.warn(DATA_TYPE_ERROR, f"{where}-10", f"not a quantity: {quantity!r}; left out")
    unit_price = _amount(b, ft1, 12, where)
    if unit_price:
        res["priceOverride"] = unit_price
    total = _amount(b, ft1, 11, where)
    if total and not unit_price:
        res["priceOverride"] = total
    if kind == "CD" and "priceOverride" in res:
        res["overrideReason"] = "credit"  # table 0017 CD: the amount is credited back
    performers = []
    for n, function in ((20, "performer"), (21, "orderer")):
        actor = add_practitioner(b, ft1.comps(n)) if ft1.get(n) else None
        if actor:
            performers.append({"function": {"text": function}, "actor": {"reference": actor}})
    if performers:
        res["performer"] = performers
    reasons = [cc for cc in (codeable_concept(ft1.comps(19, i)) for i in range(len(ft1.reps(19)))) if cc]
    if reasons:
        res["reason"] = reasons
    if account_ref:
        res["account"] = [{"reference": account_ref}]
    department = codeable_concept(ft1.comps(13))
    if department:
        res["performingOrganization"] = {"display": department.get("text") or department["coding"][0]["code"]}
    key = (
        ("ft1", transaction_id)
        if transaction_id
        else ("ft1", subject.patient_key, ft1.get(4), ft1.get(7), index)
    )
    ref = b.put("ChargeItem", key, res)
    b.use(ft1, ref)
    return ref


def _amount(b: BundleBuilder, ft1: Segment, n: int, where: str) -> dict | None:
    """FT1-11/12 (CP): an unreadable amount is left out with a warning; the charge itself is still stored."""
    if not ft1.reps(n):
        return None
    try:
        return money(ft1.reps(n)[0], ft1.encoding, f"{where}-{n}")
    except Hl7Error as err:
        b.warn(DATA_TYPE_ERROR, err.location, f"{err.reason}; left out")
        return None


def coverage(b: BundleBuilder, in1: Segment, subject: Subject, index: int) -> str | None:
    """IN1 -> Coverage; VN: a BHYT insurer (identifiers.yaml bhyt_insurers) makes the policy a BHYT card."""
    ctx = b.ctx
    where = f"IN1[{index}]"
    plan_id = in1.get(2)
    company_id = in1.get(3)
    company_name, _ = organization_name(in1.comps(4))
    policy = in1.get(36) or in1.get(49)
    insurers = {x.upper() for x in identifier_rules()["bhyt_insurers"]}
    is_bhyt = any(x and x.upper() in insurers for x in (company_id, plan_id, company_name))
    if not (policy or plan_id or company_id or company_name):
        b.warn(
            REQUIRED_FIELD_MISSING,
            f"{where}-2",
            "insurance plan, company and policy all missing: IN1 not mapped",
        )
        b.use(in1)
        return None
    res: dict = {}
    if policy:
        system = (
            ctx.systems["bhyt"] if is_bhyt else ctx.local_system("coverage", (company_id or plan_id or "x"))
        )
        res["identifier"] = [{"system": system, "value": policy}]
    res["status"] = "active"
    plan_type = codeable_concept(in1.comps(15))
    if plan_type:
        res["type"] = plan_type
    rel = in1.get(17).upper()
    if policy:
        res["subscriberId"] = policy
    res["beneficiary"] = {"reference": subject.patient_ref}
    if rel == "SEL" or not rel:
        res["subscriber"] = {"reference": subject.patient_ref}
    mapped_rel = tables()["subscriber_relationship"].get(rel, "other" if rel else None)
    if mapped_rel:
        res["relationship"] = {"coding": [{"system": SUBSCRIBER_RELATIONSHIP, "code": mapped_rel}]}
    period = {
        k: v[:10]
        for k, v in (
            ("start", b.datetime(in1.get(12), f"{where}-12")),
            ("end", b.datetime(in1.get(13), f"{where}-13")),
        )
        if v
    }
    if period:
        res["period"] = period
    res["payor"] = [_payor(b, company_id, company_name, plan_id)]
    classes = []
    for n, kind in ((2, "plan"), (8, "group")):
        value = in1.get(n)
        if value:
            entry = {"type": {"coding": [{"system": COVERAGE_CLASS, "code": kind}]}, "value": value}
            name = in1.get(n, 2) if n == 2 else in1.get(9)
            if name:
                entry["name"] = nfc(name)
            classes.append(entry)
    if classes:
        res["class"] = classes
    order = in1.get(22)
    if order.isdigit() and int(order) > 0:
        res["order"] = int(order)
    key = (
        "in1",
        subject.patient_key,
        company_id or plan_id or company_name,
        policy or in1.get(1) or str(index),
    )
    ref = b.put("Coverage", key, res)
    b.use(in1, ref)
    return ref


def _payor(b: BundleBuilder, company_id: str, name: str, plan_id: str) -> dict:
    """The insurer as an Organization (IN1-3 id, IN1-4 name); display only when neither is given."""
    if not (company_id or name):
        return {"display": plan_id or "unknown insurer"}
    body: dict = {"active": True}
    if company_id:
        body["identifier"] = [{"system": b.ctx.local_system("insurer"), "value": company_id}]
    if name:
        body["name"] = name
    body["type"] = [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "ins"}]}
    ]
    return {"reference": b.put("Organization", ("insurer", company_id or name), body)}

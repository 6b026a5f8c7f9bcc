"""ADT^A40 (merge patients), A47 (change identifier), A41 (merge accounts), A45 (move visit).

The V2-to-FHIR IG has no A39-A47 message map and leaves merging to the implementer; it maps MRG-3 to
Account (MRG[Account]). Lienthong links instead of moving: a transaction Bundle of PUTs cannot rewrite the
references that other resources hold, so the prior Patient stays, inactive, with `link replaced-by` the
survivor, and the survivor gets `link replaces` and the prior identifiers (use "old"); search and
`$everything` follow the link.
"""

from __future__ import annotations

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import human_name_
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, content_error
from adapters.hl7v2.financial import account, map_accounts
from adapters.hl7v2.patient import patient_identifiers, patient_key
from adapters.hl7v2.subjects import Subjects


def _mrgs(msg: Message) -> list[Segment]:
    mrgs = msg.all("MRG")
    if not msg.first("PID"):
        raise content_error(REQUIRED_FIELD_MISSING, "PID", "PID segment missing")
    if not mrgs:
        raise content_error(REQUIRED_FIELD_MISSING, "MRG", f"{msg.trigger} without an MRG segment")
    return mrgs


def map_merge(b: BundleBuilder, msg: Message, subjects: Subjects, org_ref: str | None) -> list[str]:
    """A40: each PID/MRG pair -> survivor Patient (link replaces) + prior Patient (inactive, replaced-by)."""
    out = []
    for i, mrg in enumerate(_mrgs(msg), start=1):
        survivor_ref = subjects.patient_of(mrg, "a merge").patient_ref
        out.append(_link(b, mrg, survivor_ref, org_ref, f"MRG[{i}]", same_is_error=True))
    return out


def map_change_identifier(
    b: BundleBuilder, msg: Message, subjects: Subjects, org_ref: str | None
) -> list[str]:
    """A47: the identifier in MRG-1 was wrong and PID-3 is right.

    When the hospital number (the Patient's key) changed, the record under the old number is linked like a
    merge; when another identifier changed (a corrected CCCD), the one Patient keeps the wrong value as
    use "old"."""
    out = []
    for i, mrg in enumerate(_mrgs(msg), start=1):
        survivor_ref = subjects.patient_of(mrg, "an identifier change").patient_ref
        out.append(_link(b, mrg, survivor_ref, org_ref, f"MRG[{i}]", same_is_error=False))
    return out


def map_merge_account(b: BundleBuilder, msg: Message, subjects: Subjects, org_ref: str | None) -> list[str]:
    """A41: MRG-3 prior account -> Account (inactive, as MRG[Account] maps it); PID-18 the surviving one."""
    out = list(map_accounts(b, msg, subjects).values())  # PID-18: the surviving account
    for i, mrg in enumerate(_mrgs(msg), start=1):
        subject = subjects.patient_of(mrg, "an account merge")
        prior = mrg.get(3)
        if not prior:
            raise content_error(REQUIRED_FIELD_MISSING, f"MRG[{i}]-3", "prior patient account number missing")
        out.append(account(b, prior, subject.patient_ref, "inactive", mrg))
    return out


def map_move_visit(b: BundleBuilder, msg: Message, subjects: Subjects, org_ref: str | None) -> list[str]:
    """A45: the visit (PV1, keyed on its number) now belongs to the PID patient; MRG-1 names the prior one.

    The Encounter id depends on the visit number only, so the PUT with the new subject moves it."""
    out = []
    for mrg in _mrgs(msg):
        pv1 = next((s for s in msg.segments[mrg.index :] if s.name in ("PV1", "PID")), None)
        subject = subjects.patient_of(pv1 if pv1 is not None and pv1.name == "PV1" else mrg, "a visit move")
        if subject.encounter_ref is None:
            raise content_error(REQUIRED_FIELD_MISSING, "PV1", "A45 without the visit (PV1) to move")
        b.use(mrg)
        out.append(subject.encounter_ref)
    return out


def _link(
    b: BundleBuilder, mrg: Segment, survivor_ref: str, org_ref: str | None, where: str, same_is_error: bool
) -> str:
    ctx = b.ctx
    old_idents = patient_identifiers(mrg, 1, ctx)
    old_key = patient_key(old_idents, ctx, f"{where}-1")
    survivor = b.get(survivor_ref)
    b.use(mrg)
    same = old_key == patient_key(survivor["identifier"], ctx, "PID-3")
    if same or (not same_is_error and not _has_hospital_number(old_idents, ctx)):
        if same_is_error:
            raise content_error("205", f"{where}-1", "MRG-1 names the same patient as PID-3")
        for ident in old_idents:
            old = dict(ident, use="old")
            if ident not in survivor["identifier"] and old not in survivor["identifier"]:
                survivor["identifier"].append(old)
        return survivor_ref
    prior_name = human_name_(mrg.comps(7)) or (survivor.get("name") or [None])[0]
    old_body: dict = {"identifier": [dict(x, use="old") for x in old_idents], "active": False}
    if prior_name:
        old_body["name"] = [prior_name]
    if org_ref:
        old_body["managingOrganization"] = {"reference": org_ref}
    old_ref = b.put("Patient", (old_key,), old_body)
    b.get(old_ref)["link"] = [{"other": {"reference": survivor_ref}, "type": "replaced-by"}]
    survivor.setdefault("link", []).append({"other": {"reference": old_ref}, "type": "replaces"})
    for ident in old_body["identifier"]:
        if ident not in survivor["identifier"]:
            survivor["identifier"].append(ident)
    return survivor_ref


def _has_hospital_number(idents: list[dict], ctx) -> bool:
    """Whether these identifiers carry a hospital number (the Patient key), or only e.g. a CCCD."""
    mrn_system = f"{ctx.systems['mrn']}/{ctx.facility}"
    return any(i["system"] == mrn_system for i in idents)

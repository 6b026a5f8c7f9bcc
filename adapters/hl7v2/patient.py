"""PID -> Patient, MSH-4 -> Organization, MRG -> merge links (segment maps PID[Patient], MRG)."""

from __future__ import annotations

from adapters.facility import organization
from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import (
    Context,
    address,
    codeable_concept,
    date_,
    datetime_,
    human_name_,
    identifier,
    identifier_rules,
    profile,
    tables,
    telecom,
)
from adapters.hl7v2.er7 import Message, Segment, split_components
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, content_error


def facility_code(msg: Message) -> str:
    """MSH-4 -> facility code through identifiers.yaml (unknown facilities keep MSH-4.1)."""
    raw = msg.sending_facility or msg.msh.get(3) or "unknown"
    known = identifier_rules().get("facilities", {}).get(raw)
    return str(known["code"]) if known else raw


def add_organization(b: BundleBuilder, msg: Message) -> str:
    """The sending hospital as an Organization identified by its facility code.

    Same id and identifier as the QĐ130 adapter's (adapters.facility); the name is the configured one
    (identifiers.yaml), else the facility registry's, else MSH-4 as sent."""
    ctx = b.ctx
    known = identifier_rules().get("facilities", {}).get(msg.sending_facility) or {}
    body = organization(ctx.facility, ctx.systems["facility"], known.get("name"))
    body.setdefault("name", msg.sending_facility or ctx.facility)
    return b.put("Organization", (), body, rid=body["id"])


def patient_identifiers(seg: Segment, n: int, ctx: Context) -> list[dict]:
    """All repetitions of a CX field (PID-3, MRG-1) as Identifiers."""
    out = []
    for i, rep in enumerate(seg.reps(n)):
        ident = identifier(rep, ctx, f"{seg.name}-{n}[{i + 1}]")
        if ident:
            out.append(ident)
    return out


def patient_key(idents: list[dict], ctx: Context, where: str) -> str:
    """The natural key of a patient at this facility: the hospital number, else the first identifier."""
    mrn_system = f"{ctx.systems['mrn']}/{ctx.facility}"
    for ident in idents:
        if ident["system"] == mrn_system:
            return ident["value"]
    if idents:
        return f"{idents[0]['system']}|{idents[0]['value']}"
    raise content_error(REQUIRED_FIELD_MISSING, where, "no patient identifier (PID-3 is empty)")


def map_patient(b: BundleBuilder, msg: Message, org_ref: str | None, pid: Segment | None = None) -> str:
    """PID -> Patient (identifiers, names, birth, sex, address, telecom, ethnicity, nationality, death)."""
    ctx = b.ctx
    pid = pid or msg.first("PID")
    if pid is None:
        raise content_error(REQUIRED_FIELD_MISSING, "PID", "PID segment missing")
    idents = patient_identifiers(pid, 3, ctx)
    for n in (2, 4, 19):  # legacy external id, alternate id, SSN (VN: BHYT card)
        for i, rep in enumerate(pid.reps(n)):
            if n == 19 and len(split_components(rep, ctx.encoding)) < 5:
                # PID-19 is a plain string (SSN); outside the US it is the social insurance card (SB).
                e = ctx.encoding
                rep = split_components(rep, e)[0].replace(e.escape, "") + e.component * 4 + "SB"
            extra = identifier(rep, ctx, f"PID-{n}[{i + 1}]")
            if extra and extra not in idents:
                idents.append(extra)
    key = patient_key(idents, ctx, "PID-3")
    res: dict = {"identifier": idents, "active": True}
    names = [n for n in (human_name_(pid.comps(5, i)) for i in range(len(pid.reps(5)))) if n]
    if names:
        res["name"] = names
    telecoms = []
    for n, use in ((13, "home"), (14, "work")):
        for i in range(len(pid.reps(n))):
            cp = telecom(pid.comps(n, i), use)
            if cp:
                telecoms.append(cp)
    if telecoms:
        res["telecom"] = telecoms
    sex = pid.get(8).upper()
    if sex:
        res["gender"] = tables()["sex"].get(sex, "unknown")
    birth = pid.get(7)
    if birth:
        res["birthDate"] = date_(birth, ctx, "PID-7")
        full = datetime_(birth, ctx, "PID-7")
        if full and "T" in full:
            res["extension"] = [
                {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": full}
            ]
    if pid.get(30).upper() == "Y" or pid.get(29):
        death = datetime_(pid.get(29), ctx, "PID-29")
        res["deceasedDateTime" if death else "deceasedBoolean"] = death or True
    addresses = [a for a in (address(pid.comps(11, i), ctx) for i in range(len(pid.reps(11)))) if a]
    if addresses:
        res["address"] = addresses
    marital = codeable_concept(pid.comps(16))
    if marital:
        res["maritalStatus"] = marital
    exts = profile(ctx.profile)["extensions"]
    ethnic = pid.comps(22)
    if ethnic and ethnic[0]:
        cc = codeable_concept(ethnic[:2] + [""])
        cc["coding"][0]["system"] = profile(ctx.profile)["code_systems"]["ethnicity"]
        res.setdefault("extension", []).append({"url": exts["ethnicity"], "valueCodeableConcept": cc})
    nation = pid.get(28)
    if nation:
        cc = {"coding": [{"system": "urn:iso:std:iso:3166", "code": nation}]}
        url = exts["nationality"]
        if url == "http://hl7.org/fhir/StructureDefinition/patient-nationality":
            ext = {"url": url, "extension": [{"url": "code", "valueCodeableConcept": cc}]}
        else:
            ext = {"url": url, "valueCodeableConcept": cc}
        res.setdefault("extension", []).append(ext)
    if org_ref:
        res["managingOrganization"] = {"reference": org_ref}
    return b.put("Patient", (key,), res)

"""VXU^V04: ORC + RXA + RXR -> Immunization (segment maps ORC/RXA/RXR[Immunization])."""

from __future__ import annotations

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, datetime_, quantity, tables
from adapters.hl7v2.encounter import add_practitioner
from adapters.hl7v2.er7 import Message
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, TABLE_VALUE_NOT_FOUND, content_error
from adapters.hl7v2.results import order_groups, order_identifiers
from adapters.hl7v2.subjects import Subjects

V2_0443 = "http://terminology.hl7.org/CodeSystem/v2-0443"


def map_immunizations(b: BundleBuilder, msg: Message, subjects: Subjects) -> list[str]:
    """Every RXA -> Immunization keyed on the filler/placer order, else patient + date + vaccine."""
    ctx = b.ctx
    groups = [g for g in order_groups(msg, "RXA") if g[1] is not None]
    if not groups:
        raise content_error(REQUIRED_FIELD_MISSING, "RXA", "VXU^V04 without an RXA segment")
    refs = []
    for gi, (orc, rxa, children) in enumerate(groups, start=1):
        where = f"RXA[{gi}]"
        subject = subjects.patient_of(rxa, "an immunization")
        patient_ref, encounter_ref, patient_key = (
            subject.patient_ref,
            subject.encounter_ref,
            subject.patient_key,
        )
        vaccine = codeable_concept(rxa.comps(5))
        if not vaccine:
            raise content_error(REQUIRED_FIELD_MISSING, f"{where}-5", "administered code (vaccine) missing")
        when = datetime_(rxa.get(3), ctx, f"{where}-3")
        if not when:
            raise content_error(REQUIRED_FIELD_MISSING, f"{where}-3", "administration date missing")
        ids, key = order_identifiers(orc, None, ctx)
        key = key or f"rxa:{patient_key}|{rxa.get(3)}|{rxa.get(5)}"
        completion = rxa.get(20).upper()
        status = tables()["completion_status"].get(completion, "completed" if not completion else None)
        if status is None:
            # Immunization.status has no "unknown": the administration record itself is what matters.
            b.warn(
                TABLE_VALUE_NOT_FOUND, f"{where}-20", f"unknown completion status {completion!r}: completed"
            )
            status = "completed"
        if rxa.get(21).upper() == "D":
            status = "entered-in-error"
        res: dict = {
            "status": status,
            "vaccineCode": vaccine,
            "patient": {"reference": patient_ref},
            "occurrenceDateTime": when,
        }
        if ids:
            res["identifier"] = ids
        if encounter_ref:
            res["encounter"] = {"reference": encounter_ref}
        recorded = b.datetime(orc.get(9), f"ORC[{gi}]-9") if orc is not None else None
        if recorded:
            res["recorded"] = recorded
        notes = rxa.get(9)
        if notes in ("00", "01"):  # CDC convention (NIP001): 00 new record, 01 historical
            res["primarySource"] = notes == "00"
        amount = rxa.get(6)
        if amount and amount != "999":
            res["doseQuantity"] = quantity(amount, rxa.comps(7), f"{where}-6")
        lot = rxa.get(15)
        if lot:
            res["lotNumber"] = lot
        expiry = (b.datetime(rxa.get(16), f"{where}-16") or "")[:10]
        if expiry:
            res["expirationDate"] = expiry
        manufacturer = rxa.comps(17)
        if manufacturer and any(manufacturer[:2]):
            res["manufacturer"] = {"display": manufacturer[1] or manufacturer[0]}
        performers = []
        administering = add_practitioner(b, rxa.comps(10)) if rxa.get(10) else None
        if administering:
            performers.append(
                {
                    "function": {"coding": [{"system": V2_0443, "code": "AP"}]},
                    "actor": {"reference": administering},
                }
            )
        ordering = add_practitioner(b, orc.comps(12)) if orc is not None and orc.get(12) else None
        if ordering:
            performers.append(
                {
                    "function": {"coding": [{"system": V2_0443, "code": "OP"}]},
                    "actor": {"reference": ordering},
                }
            )
        if performers:
            res["performer"] = performers
        rxr = next((s for s in children if s.name == "RXR"), None)
        if rxr is not None:
            route = codeable_concept(rxr.comps(1))
            if route:
                res["route"] = route
            site = codeable_concept(rxr.comps(2))
            if site:
                res["site"] = site
            b.use(rxr)
        refusal = codeable_concept(rxa.comps(18))
        if refusal and status == "not-done":
            res["statusReason"] = refusal
        ref = b.put("Immunization", ("rxa", key), res)
        b.use(rxa, ref)
        b.use(orc, ref)
        refs.append(ref)
    return refs

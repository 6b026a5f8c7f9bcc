"""One HL7 v2 message -> one FHIR transaction Bundle: dispatch on MSH-9 to the message family's mapper.

Order of work: every PID/PV1 (subjects.py), then the family mapper (results, orders, appointments, ...),
then the patient-level segments nobody used yet (clinical.py), then notes; whatever is still unused is
listed as a warning, so no segment is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.base import RecordError
from adapters.hl7v2.bundle import BundleBuilder, add_provenance
from adapters.hl7v2.clinical import map_patient_segments
from adapters.hl7v2.datatypes import Context
from adapters.hl7v2.documents import map_documents
from adapters.hl7v2.er7 import Message
from adapters.hl7v2.errors import (
    ACCEPTED,
    INTERNAL_ERROR,
    REQUIRED_FIELD_MISSING,
    Hl7Error,
    content_error,
    reject,
)
from adapters.hl7v2.financial import map_accounts, map_financial
from adapters.hl7v2.immunization import map_immunizations
from adapters.hl7v2.merge import map_change_identifier, map_merge, map_merge_account, map_move_visit
from adapters.hl7v2.orders import map_orders
from adapters.hl7v2.patient import add_organization, facility_code
from adapters.hl7v2.pharmacy import map_dispenses, map_pharmacy_orders
from adapters.hl7v2.problems import map_problems
from adapters.hl7v2.referral import map_referrals
from adapters.hl7v2.results import map_results
from adapters.hl7v2.scheduling import map_appointments
from adapters.hl7v2.subjects import Subjects, map_subjects
from adapters.hl7v2.validate import check_supported, hl7apy_parse, segment_warnings


def _adt(b: BundleBuilder, msg: Message, subjects: Subjects, org_ref: str | None) -> None:
    """ADT: Patient/Encounter are mapped by subjects; PID-18 adds the Account (segment map PID[Account])."""
    if subjects.first.patient_ref is None:
        raise content_error(REQUIRED_FIELD_MISSING, "PID", "PID segment missing")
    map_accounts(b, msg, subjects)


MAPPERS: dict[str, Callable[[BundleBuilder, Message, Subjects, str | None], object]] = {
    "adt": _adt,
    "merge": map_merge,
    "merge_account": map_merge_account,
    "move_visit": map_move_visit,
    "change_identifier": map_change_identifier,
    "oru": lambda b, msg, subjects, org: map_results(b, msg, subjects),
    "oul": lambda b, msg, subjects, org: map_results(b, msg, subjects, orc_after=True),
    "order": lambda b, msg, subjects, org: map_orders(b, msg, subjects),
    "vxu": lambda b, msg, subjects, org: map_immunizations(b, msg, subjects),
    "pharmacy_order": lambda b, msg, subjects, org: map_pharmacy_orders(b, msg, subjects),
    "pharmacy_dispense": lambda b, msg, subjects, org: map_dispenses(b, msg, subjects),
    "siu": lambda b, msg, subjects, org: map_appointments(b, msg, subjects),
    "ref": lambda b, msg, subjects, org: map_referrals(b, msg, subjects),
    "mdm": lambda b, msg, subjects, org: map_documents(b, msg, subjects),
    "ppr": lambda b, msg, subjects, org: map_problems(b, msg, subjects),
    "financial": lambda b, msg, subjects, org: map_financial(b, msg, subjects),
}
# Mappers that own the visit: A45 moves it, so its PV1 is written whole.
_VISIT_MODE = {"merge": "none", "merge_account": "none", "change_identifier": "none", "move_visit": "put"}


def to_bundle(msg: Message, options: dict | None = None) -> tuple[dict, list[RecordError]]:
    """Map a read message to a transaction Bundle; raise Hl7Error (AR/AE) with a precise location."""
    options = options or {}
    row, structure_warnings = check_supported(msg)
    if options.get("hl7apy_validate"):
        hl7apy_parse(msg)
    unknown_warnings, unknown = segment_warnings(msg)
    ctx = Context.build(facility_code(msg), options, msg.encoding)
    b = BundleBuilder(ctx, msg.control_id)
    b.warnings += structure_warnings + unknown_warnings
    org_ref = add_organization(b, msg)
    b.use(msg.msh, org_ref)
    mapper = row["mapper"]
    if mapper in _VISIT_MODE:
        row = {**row, "encounter": _VISIT_MODE[mapper]}
    try:
        subjects = map_subjects(b, msg, row, org_ref)
        MAPPERS[mapper](b, msg, subjects, org_ref)
        map_patient_segments(b, msg, subjects)
    except Hl7Error:
        raise
    except Exception as exc:  # a mapper bug must become an AR with a reason, never escape the listener
        raise reject(INTERNAL_ERROR, "mapping", f"{type(exc).__name__}: {exc}") from exc
    add_provenance(b, msg, org_ref)  # maps EVN and SFT too, so it comes before the unmapped report
    _report_unmapped(b, msg, unknown)
    return b.bundle(), b.warnings


def _report_unmapped(b: BundleBuilder, msg: Message, unknown: set[str]) -> None:
    """One warning per segment name that was not mapped (Z-segments included): kept only in the archive."""
    counts: dict[str, list[int]] = {}
    for seg in msg.segments:
        if seg.index not in b.used and seg.name not in unknown:
            counts.setdefault(seg.name, []).append(seg.index + 1)
    for name, positions in counts.items():
        times = f" ({len(positions)}×)" if len(positions) > 1 else ""
        b.warn(ACCEPTED, name, f"segment {name}{times} not mapped; kept in the archived message")

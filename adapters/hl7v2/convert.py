"""One HL7 v2 message -> one FHIR transaction Bundle: dispatch on MSH-9 to the segment mappers."""

from __future__ import annotations

from adapters.base import RecordError
from adapters.hl7v2.bundle import BundleBuilder, add_provenance
from adapters.hl7v2.datatypes import Context
from adapters.hl7v2.encounter import encounter_ref as visit_ref
from adapters.hl7v2.encounter import map_encounter
from adapters.hl7v2.er7 import Message
from adapters.hl7v2.errors import INTERNAL_ERROR, Hl7Error, reject
from adapters.hl7v2.immunization import map_immunizations
from adapters.hl7v2.orders import map_orders
from adapters.hl7v2.patient import add_organization, facility_code, map_merge, map_patient, patient_key
from adapters.hl7v2.results import map_results
from adapters.hl7v2.validate import check_supported, hl7apy_parse, segment_warnings


def to_bundle(msg: Message, options: dict | None = None) -> tuple[dict, list[RecordError]]:
    """Map a read message to a transaction Bundle; raise Hl7Error (AR/AE) with a precise location."""
    options = options or {}
    row = check_supported(msg)
    if options.get("hl7apy_validate"):
        hl7apy_parse(msg)
    warnings = segment_warnings(msg)
    ctx = Context.build(facility_code(msg), options, msg.encoding)
    b = BundleBuilder(ctx)
    org_ref = add_organization(b, msg)
    mapper = row["mapper"]
    try:
        if mapper == "merge":
            map_merge(b, msg, org_ref)
        else:
            patient_ref = map_patient(b, msg, org_ref)
            if row.get("encounter", "put") == "put":
                encounter_ref = map_encounter(b, msg, patient_ref, org_ref, required=(mapper == "adt"))
            else:
                encounter_ref = visit_ref(b, msg)
            if mapper == "oru":
                map_results(b, msg, patient_ref, encounter_ref)
            elif mapper == "order":
                map_orders(b, msg, patient_ref, encounter_ref)
            elif mapper == "vxu":
                key = patient_key(b.get(patient_ref)["identifier"], ctx, "PID-3")
                map_immunizations(b, msg, patient_ref, encounter_ref, key)
    except Hl7Error:
        raise
    except Exception as exc:  # a mapper bug must become an AR with a reason, never escape the listener
        raise reject(INTERNAL_ERROR, "mapping", f"{type(exc).__name__}: {exc}") from exc
    add_provenance(b, msg, org_ref)
    return b.bundle(), warnings

"""What one HTTP access was, as a FHIR R4 AuditEvent with IHE Basic Audit Log Patterns (BALP) codes.

Pure functions, no I/O: `classify` runs on the request path (cheap string work only); `build_event`
runs on the audit writer thread, where the response body is parsed to find the patients it touched,
so reads do not pay for it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import orjson

from fhir_server.search.compartment import patient_compartment

EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"

# Search parameters that name a patient in a query string (Observation?subject=Patient/x, ?patient=x).
_PATIENT_PARAMS = ("patient", "subject", "subject:Patient", "patient:Patient", "beneficiary")


@dataclass(frozen=True)
class Access:
    """The classification of a request: BALP subtype (FHIR restful interaction) and action code."""

    subtype: str
    action: str
    resource_type: str | None = None
    resource_id: str | None = None
    export: bool = False
    ingest: bool = False  # an /ingest request (raw QĐ130 / HL7 v2 upload, dead letters, inbox status)


@dataclass
class AccessRecord:
    """Everything the writer needs to build one AuditEvent (filled in by the middleware)."""

    access: Access
    recorded: datetime
    status: int
    query: str
    address: str | None
    subject: str | None  # the principal's subject (client id or user), None when unauthenticated
    facility: str | None = None
    method: str = "GET"
    body: bytes = b""
    body_json: bool = False
    request_body: bytes = b""  # writes: the resource or Bundle sent (its patients are touched too)
    extra_patients: list[str] = field(default_factory=list)


def classify(method: str, path: str, base_path: str) -> Access | None:
    """The BALP subtype/action of a FHIR request, or None for what is not patient data (metadata,
    the UI's static parts, paths outside the FHIR base)."""
    if not path.startswith(base_path):
        return None
    parts = [p for p in path[len(base_path) :].split("/") if p]
    if method in ("HEAD", "OPTIONS") or parts[:1] == ["metadata"]:
        return None
    if not parts:
        if method == "POST":
            return Access("transaction", "E")  # transaction or batch Bundle (the body says which)
        return Access("search-system", "E")
    first = parts[0]
    op = next((p for p in parts if p.startswith("$")), None)
    rtype = first if first[:1].isupper() else None
    rid = parts[1] if rtype and len(parts) > 1 and not parts[1].startswith(("$", "_")) else None
    if op is not None:
        return Access("operation", "E", rtype, rid, export=op == "$export")
    if first in ("_search", "_history") or (rtype and parts[1:2] == ["_search"]):
        if "_history" in parts:
            return Access("history-system" if not rtype else "history-type", "R", rtype)
        return Access("search-system" if not rtype else "search-type", "E", rtype)
    if rtype is None:
        return Access("operation", "E")  # identity review queue and other system endpoints
    if "_history" in parts:
        if len(parts) >= 4:
            return Access("vread", "R", rtype, rid)
        return Access("history-instance" if rid else "history-type", "R", rtype, rid)
    if rid is None:
        subtype, action = {
            "GET": ("search-type", "E"),
            "POST": ("create", "C"),
            "PUT": ("update", "U"),
            "PATCH": ("patch", "U"),
            "DELETE": ("delete", "D"),
        }.get(method, ("operation", "E"))
        return Access(subtype, action, rtype)
    subtype, action = {
        "GET": ("read", "R"),
        "PUT": ("update", "U"),
        "PATCH": ("patch", "U"),
        "DELETE": ("delete", "D"),
    }.get(method, ("operation", "E"))
    return Access(subtype, action, rtype, rid)


def classify_ingest(method: str, path: str) -> Access | None:
    """The BALP-style classification of an /ingest request (None for other paths): uploads and
    replays are imports (DICOM 110107), listings and status reads are queries."""
    if path != "/ingest" and not path.startswith("/ingest/"):
        return None
    if method in ("HEAD", "OPTIONS"):
        return None
    if method == "POST":
        return Access("create", "C", ingest=True)
    return Access("search-system", "E", ingest=True)


INBOX_SYSTEM = "urn:lienthong:ingest-inbox"


def _ingest_entity(record: AccessRecord) -> dict | None:
    """The archived payload an upload went to (inbox id) and its record counts, from the JSON answer."""
    if not (record.body_json and record.body):
        return None
    try:
        doc = orjson.loads(record.body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("inbox_id") is None:
        return None
    entity: dict = {
        "what": {"identifier": {"system": INBOX_SYSTEM, "value": str(doc["inbox_id"])}},
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "role": {"system": OBJECT_ROLE, "code": "3", "display": "Report"},
        "description": "ingest archive",
    }
    # The patients an upload touched are not named in the answer; the record counts are (a bound on them).
    detail = [
        {"type": key, "valueString": str(doc[key])}
        for key in ("adapter", "status", "accepted", "rejected")
        if doc.get(key) is not None
    ]
    if detail:
        entity["detail"] = detail
    return entity


def outcome_code(status: int) -> str:
    """AuditEvent.outcome from the HTTP status: 0 success, 4 minor failure (client), 8 serious (server)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def _patient_refs_of_resource(resource: dict, out: dict[str, None]) -> None:
    """Add the Patient references that put `resource` in a Patient compartment (or the Patient itself)."""
    rtype = resource.get("resourceType")
    if rtype == "Patient" and resource.get("id"):
        out[f"Patient/{resource['id']}"] = None
        return
    if rtype == "Bundle":
        for entry in resource.get("entry") or ():
            if not isinstance(entry, dict):
                continue
            inner = entry.get("resource")
            if isinstance(inner, dict):
                _patient_refs_of_resource(inner, out)
            # transaction/batch responses: where each entry was written or read
            where = (entry.get("response") or {}).get("location") or ""
            if isinstance(where, str) and where.startswith("Patient/"):
                out[where.split("/_history", 1)[0]] = None
        return
    if rtype not in patient_compartment():
        return
    # Compartment parameters are mostly top-level reference elements (subject, patient, performer…):
    # a shallow scan of the top level finds them without evaluating FHIRPath on the writer thread.
    for value in resource.values():
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, dict):
                ref = item.get("reference")
                if isinstance(ref, str) and ref.startswith("Patient/"):
                    out[ref.split("/_history", 1)[0]] = None


def stored_patients(store, res_type: str, res_id: str) -> list[str]:
    """The Patient references of the stored current version of a resource ([] when absent or deleted)."""
    try:
        stored = store.read(res_type, res_id)
    except Exception:  # an unreadable id or a store hiccup: the request itself will answer for it
        return []
    if stored is None or stored.deleted:
        return []
    found: dict[str, None] = {}
    _patient_refs_of_resource(stored.as_dict(), found)
    return list(found)


def _patients_in_query(query: str, out: dict[str, None]) -> None:
    for name, value in parse_qsl(query, keep_blank_values=False):
        if name not in _PATIENT_PARAMS:
            continue
        for one in value.split(","):
            one = one.strip()
            if one.startswith("Patient/"):
                out[one] = None
            elif one and name.startswith("patient") and "/" not in one:
                out[f"Patient/{one}"] = None


def patients_touched(record: AccessRecord) -> list[str]:
    """The Patient references an access touched: the addressed Patient, the patients named in the
    query, and the patients of every resource in the response body."""
    found: dict[str, None] = {}
    access = record.access
    if access.resource_type == "Patient" and access.resource_id:
        found[f"Patient/{access.resource_id}"] = None
    if access.resource_type == "Patient" and access.subtype.startswith("search"):
        for name, value in parse_qsl(record.query):
            if name == "_id":
                for one in value.split(","):
                    if one.strip():
                        found[f"Patient/{one.strip()}"] = None
    _patients_in_query(record.query, found)
    for body, is_json in ((record.request_body, True), (record.body, record.body_json)):
        if not (is_json and body):
            continue
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            _patient_refs_of_resource(parsed, found)
    for ref in record.extra_patients:
        found[ref] = None
    return list(found)


def build_event(record: AccessRecord, observer: str = "Lienthong FHIR server") -> dict:
    """The AuditEvent of one access (BALP: RESTful activity, or DICOM Export for $export)."""
    access = record.access
    if access.export:
        event_type = {"system": DICOM, "code": "110106", "display": "Export"}
    elif access.ingest and access.action == "C":
        event_type = {"system": DICOM, "code": "110107", "display": "Import"}
    else:
        event_type = {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"}
    who: dict = {"display": "anonymous"}
    if record.subject:
        who = {"identifier": {"system": "urn:lienthong:principal", "value": record.subject}}
    agent: dict = {
        "type": {"coding": [{"system": DICOM, "code": "110153", "display": "Source Role ID"}]},
        "who": who,
        "requestor": True,
    }
    if record.address:
        agent["network"] = {"address": record.address, "type": "2"}
    entities: list[dict] = []
    if access.ingest:
        inbox = _ingest_entity(record)
        if inbox is not None:
            entities.append(inbox)
    for ref in [] if access.ingest else patients_touched(record):
        entities.append(
            {
                "what": {"reference": ref},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if access.resource_type and access.resource_id and access.resource_type != "Patient":
        entities.append(
            {
                "what": {"reference": f"{access.resource_type}/{access.resource_id}"},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            }
        )
    if record.query or access.subtype.startswith("search"):
        query_entity: dict = {
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
            "query": base64.b64encode(record.query.encode()).decode(),
        }
        if access.resource_type:
            query_entity["description"] = access.resource_type
        entities.append(query_entity)
    event: dict = {
        "resourceType": "AuditEvent",
        "type": event_type,
        "subtype": [{"system": INTERACTION, "code": access.subtype}],
        "action": access.action,
        "recorded": record.recorded.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "outcome": outcome_code(record.status),
        "agent": [agent],
        "source": {
            "observer": {"display": observer},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
    }
    if record.status >= 400:
        event["outcomeDesc"] = f"HTTP {record.status}"
    if entities:
        event["entity"] = entities
    return event

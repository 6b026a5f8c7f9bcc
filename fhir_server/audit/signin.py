"""AuditEvents written outside the request middleware (issue 13): sign-in attempts on /ui/login and
/auth/authorize (DICOM 110114 User Authentication / 110122 Login), and the consent page's patient
lookup by CCCD/BHYT (a Patient search: who searched, which identifier, which patients, outcome)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from fhir_server.audit.events import DICOM, ENTITY_TYPE, EVENT_TYPE, INTERACTION, OBJECT_ROLE

_SOURCE = {
    "observer": {"display": "Lienthong FHIR server"},
    "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
}


_LOGIN = {"system": DICOM, "code": "110122", "display": "Login"}
_LOGOUT = {"system": DICOM, "code": "110123", "display": "Logout"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _agent(subject: str | None, address: str | None) -> dict:
    who: dict = {"identifier": {"system": "urn:lienthong:principal", "value": subject}} if subject else {}
    agent: dict = {
        "type": {"coding": [{"system": DICOM, "code": "110153", "display": "Source Role ID"}]},
        "who": who or {"display": "anonymous"},
        "requestor": True,
    }
    if address:
        agent["network"] = {"address": address, "type": "2"}
    return agent


def _auth_event(subtype: dict, ok: bool, agents: list[dict], where: str) -> dict:
    """A DICOM 110114 User Authentication event about one endpoint."""
    return {
        "resourceType": "AuditEvent",
        "type": {"system": DICOM, "code": "110114", "display": "User Authentication"},
        "subtype": [subtype],
        "action": "E",
        "recorded": _now(),
        "outcome": "0" if ok else "4",
        "agent": agents,
        "source": _SOURCE,
        "entity": [
            {
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "description": where,
            }
        ],
    }


def signin_event(username: str, address: str | None, outcome: str, where: str) -> dict:
    """A sign-in attempt: outcome 'success', 'failed' (wrong password or unknown user) or 'locked'."""
    agent = _agent(f"user/{username[:64]}" if username else None, address)
    event = _auth_event(_LOGIN, outcome == "success", [agent], where)
    if outcome != "success":
        event["outcomeDesc"] = outcome
    return event


def revoke_event(client_id: str, username: str | None, address: str | None, outcome: str) -> dict:
    """A token revocation at /auth/revoke (RFC 7009): outcome 'revoked', 'unknown' or 'other_client'."""
    agents = [_agent(f"client/{client_id[:128]}", address)]
    if username:  # whose sign-in the token carried
        agents.append(
            {
                "type": {"coding": [{"system": DICOM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {
                    "identifier": {"system": "urn:lienthong:principal", "value": f"user/{username[:64]}"}
                },
                "requestor": False,
            }
        )
    event = _auth_event(_LOGOUT, outcome != "other_client", agents, "/auth/revoke")
    event["outcomeDesc"] = outcome
    return event


def lookup_event(subject: str, address: str | None, identifier: str, patients: list[str], ok: bool) -> dict:
    """The consent page's patient lookup: a Patient search by identifier and the patients it found."""
    entities: list[dict] = [
        {
            "what": {"reference": f"Patient/{pid}"},
            "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
        }
        for pid in patients
    ]
    entities.append(
        {
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
            "description": "Patient",
            "query": base64.b64encode(f"identifier={identifier}".encode()).decode(),
        }
    )
    event: dict = {
        "resourceType": "AuditEvent",
        "type": {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
        "subtype": [{"system": INTERACTION, "code": "search-type"}],
        "action": "E",
        "recorded": _now(),
        "outcome": "0" if ok else "4",
        "agent": [_agent(subject, address)],
        "source": _SOURCE,
        "entity": entities,
    }
    if not ok:
        event["outcomeDesc"] = "no patient"
    return event

"""Collects mapped resources into one FHIR transaction Bundle (PUT, deterministic ids) plus its Provenance."""

from __future__ import annotations

from adapters.hl7v2.datatypes import Context, datetime_
from adapters.hl7v2.er7 import Message
from adapters.ids import deterministic_id
from fhir_server.timeutil import instant, now_us
from mappings import profile_set


class BundleBuilder:
    """Adds resources once each (first writer wins per type/id) and renders the transaction Bundle."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._entries: dict[tuple[str, str], dict] = {}
        self._profiles = profile_set(ctx.profile).get("profiles", {})

    def put(self, resource_type: str, key: tuple, body: dict) -> str:
        """Add a resource keyed on (facility, *key); return its reference "Type/id"."""
        rid = deterministic_id(resource_type, self.ctx.facility, *key)
        ref = f"{resource_type}/{rid}"
        if (resource_type, rid) not in self._entries:
            resource = {"resourceType": resource_type, "id": rid}
            profile = self._profiles.get(resource_type)
            if profile:
                resource["meta"] = {"profile": [profile]}
            resource.update({k: v for k, v in body.items() if k != "resourceType"})
            self._entries[(resource_type, rid)] = resource
        return ref

    def get(self, ref: str) -> dict | None:
        """The resource already added under this reference, to enrich it (e.g. merge links)."""
        rtype, rid = ref.split("/", 1)
        return self._entries.get((rtype, rid))

    def refs(self) -> list[str]:
        """References of every resource added so far."""
        return [f"{t}/{i}" for t, i in self._entries]

    def bundle(self) -> dict:
        """The transaction Bundle: one PUT per resource."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{rid}",
                    "resource": res,
                    "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
                }
                for (rtype, rid), res in self._entries.items()
            ],
        }


def add_provenance(b: BundleBuilder, msg: Message, org_ref: str | None) -> str:
    """Record the source message (MSH-10, sending app/facility, MSH-7) as a Provenance of every resource."""
    ctx = b.ctx
    msh = msg.msh
    targets = [{"reference": r} for r in b.refs()]
    try:
        recorded = datetime_(msh.get(7), ctx, "MSH-7")
    except Exception:  # a bad MSH-7 must not lose the data; the receive time is recorded instead
        recorded = None
    if not recorded or "T" not in recorded:
        recorded = instant(now_us())
    app = msh.get(3)
    event = f"{msg.message_code}^{msg.trigger}"
    who: dict = {"display": f"{app}@{msh.get(4)}" if app else msh.get(4)}
    if org_ref:
        who["reference"] = org_ref
    body = {
        "target": targets,
        "recorded": recorded,
        "activity": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": msg.trigger}],
            "text": event,
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": who,
            }
        ],
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {"system": ctx.local_system("msh-10"), "value": msg.control_id},
                    "display": f"HL7 v{msg.version} {event} {msg.control_id} from {app or '?'}",
                },
            }
        ],
    }
    return b.put("Provenance", ("hl7v2", app, msg.control_id), body)

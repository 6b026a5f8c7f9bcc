"""Collects mapped resources into one FHIR transaction Bundle (PUT, deterministic ids) plus its Provenance."""

from __future__ import annotations

from adapters.base import RecordError
from adapters.hl7v2.datatypes import Context, codeable_concept, datetime_, profile
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import DATA_TYPE_ERROR, Hl7Error, warning
from adapters.ids import deterministic_id
from fhir_server.timeutil import instant, now_us
from mappings.profile_rules import profile_for


class BundleBuilder:
    """Adds resources once each (first writer wins per type/id) and renders the transaction Bundle.

    It also keeps the bookkeeping that makes "never silently dropped" checkable: which segments were
    mapped (and into which resource), and the warnings for the ACK."""

    def __init__(self, ctx: Context, record_key: str | None = None):
        self.ctx = ctx
        self.record_key = record_key
        self._entries: dict[tuple[str, str], dict] = {}
        self._profile_set = profile(ctx.profile)
        self.used: set[int] = set()  # indexes of segments that were mapped
        self.produced: dict[int, str] = {}  # segment index -> the resource it became (notes attach there)
        self.warnings: list[RecordError] = []

    def use(self, seg: Segment | None, ref: str | None = None) -> None:
        """Record that this segment was mapped (into `ref` when it became one resource)."""
        if seg is None:
            return
        self.used.add(seg.index)
        if ref:
            self.produced[seg.index] = ref

    def warn(self, hl7_code: str, location: str, reason: str) -> None:
        """A problem that did not stop the message; listed in the per-message result and the ACK."""
        self.warnings.append(warning(hl7_code, location, reason, self.record_key))

    def datetime(self, value: str, where: str) -> str | None:
        """An optional TS/DTM: a malformed value is dropped with a warning instead of failing the message."""
        try:
            return datetime_(value, self.ctx, where)
        except Hl7Error as err:
            self.warn(DATA_TYPE_ERROR, where, f"{err.reason}; left out")
            return None

    def put(
        self, resource_type: str, key: tuple, body: dict, facility: str | None = None, rid: str | None = None
    ) -> str:
        """Add a resource keyed on (facility, *key), or under an id shared with other adapters (`rid`);
        return its reference "Type/id". meta.profile is chosen from the content by the profile set's
        rules (mappings/profile_rules.py), e.g. a heart rate gets the R4 heartrate profile."""
        rid = rid or deterministic_id(resource_type, facility or self.ctx.facility, *key)
        ref = f"{resource_type}/{rid}"
        if (resource_type, rid) not in self._entries:
            resource = {"resourceType": resource_type, "id": rid}
            resource.update({k: v for k, v in body.items() if k != "resourceType"})
            profile = profile_for(self._profile_set, resource)
            if profile:
                resource = {
                    "resourceType": resource_type,
                    "id": rid,
                    "meta": {"profile": [profile]},
                    **resource,
                }
            self._entries[(resource_type, rid)] = resource
        return ref

    def has(self, ref: str | None) -> bool:
        """Whether this bundle writes the referenced resource (as opposed to only pointing at it)."""
        if not ref or "/" not in ref:
            return False
        rtype, rid = ref.split("/", 1)
        return (rtype, rid) in self._entries

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
    who: dict = {"display": f"{app}@{msh.get(4)}" if app else (msh.get(4) or ctx.facility)}
    if org_ref:
        who["reference"] = org_ref
    body: dict = {
        "target": targets,
        "recorded": recorded,
        "activity": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": msg.trigger}],
            "text": event,
        },
        "agent": [{"type": _participant("author"), "who": who}],
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
    _event(b, msg.first("EVN"), body)
    for sft in msg.all("SFT"):
        # Segment map SFT[Device]: the sending software, kept as a display-only reference.
        name = " ".join(x for x in (sft.get(3), sft.get(2)) if x) or sft.get(1)
        if name:
            body["entity"].append({"role": "derivation", "what": {"display": f"software {name}"}})
        b.use(sft)
    return b.put("Provenance", ("hl7v2", app, msg.control_id), body)


def _participant(code: str) -> dict:
    return {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": code}
        ]
    }


def _event(b: BundleBuilder, evn: Segment | None, body: dict) -> None:
    """EVN (segment map EVN[Provenance]): EVN-6 occurred, EVN-4 reason, EVN-5 operator as enterer."""
    if evn is None:
        return
    occurred = b.datetime(evn.get(6), "EVN-6") or b.datetime(evn.get(2), "EVN-2")
    if occurred:
        body["occurredDateTime"] = occurred
    reason = codeable_concept(evn.comps(4))
    if reason:
        body["reason"] = [reason]
    operator = evn.comps(5)
    if operator and any(operator[:3]):
        name = " ".join(c for c in operator[1:3] if c) or operator[0]
        who: dict = {"display": name}
        if operator[0]:
            who["identifier"] = {"system": b.ctx.local_system("practitioner"), "value": operator[0]}
        body["agent"].append({"type": _participant("enterer"), "who": who})
    b.use(evn)

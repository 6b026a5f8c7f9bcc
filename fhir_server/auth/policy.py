"""What a request needs from the token, and whether the token has it (no I/O here).

`classify` maps a FHIR request (method + path under the base) to an `Access`; `check_fhir` checks it
against the caller's `ScopePolicy` and returns the (possibly narrowed) query parameters plus the
look-ups the gate must still do against the store (patient compartment, facility of stored data).

Choices (docs/security.md):
- `_include`, `_revinclude` (also `*` and `:iterate`), chained parameters and `_has` are *refused*
  (403) when they could return or reveal a type the token may not read, so no result is silently
  incomplete; `$everything` is *filtered*: its `_type` is narrowed to the readable types.
- `patient/` grants: searches get the compartment criterion added, reads are checked against the
  compartment, and `_include`/`_revinclude`/chains/`_has`, history and writes are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_server.auth.scopes import ALL, PATIENT, ScopePolicy
from fhir_server.errors import FhirError
from fhir_server.i18n import Localized, msg
from fhir_server.search.compartment import patient_compartment
from fhir_server.search.registry import get_registry


@dataclass(frozen=True)
class Access:
    """One FHIR request as the policy sees it."""

    kind: str  # read, vread, history-instance, search, history-type, create, update, patch, delete,
    # cond-update, cond-delete, everything, match, system-search, system-history, bundle, system-op
    resource_type: str | None = None
    resource_id: str | None = None


@dataclass
class Plan:
    """The outcome of a successful check: parameters to run with and look-ups still to do."""

    params: list[tuple[str, str]]
    rewritten: bool = False
    compartment_check: tuple[str, str] | None = None  # (type, id) must be in the patient's compartment
    facility_new: bool = False  # the body's resource must belong to the caller's facility
    facility_stored: tuple[str, str] | None = None  # the stored (type, id) must belong to it
    facility_criteria: tuple[str, list[tuple[str, str]]] | None = None  # conditional target(s)
    read_blind: bool = False  # the caller may not read this type: answer writes minimally
    notes: list[str] = field(default_factory=list)


def forbidden(text: str | Localized) -> FhirError:
    """A 403 OperationOutcome."""
    return FhirError.make(403, "forbidden", text)


def classify(method: str, segments: list[str]) -> Access:
    """The access a FHIR request (path segments under the base) asks for."""
    n = len(segments)
    first = segments[0] if n else ""
    if n == 0:
        return Access("bundle" if method == "POST" else "system-search")
    if first == "_search" and n == 1:
        return Access("system-search")
    if first == "_history" and n == 1:
        return Access("system-history")
    if first in _EXPORT_OPS:
        return Access("export")
    if not first[:1].isupper():
        return Access("system-op")
    rtype = first
    if n == 1:
        kind = {
            "GET": "search",
            "HEAD": "search",
            "POST": "create",
            "PUT": "cond-update",
            "DELETE": "cond-delete",
        }
        return Access(kind.get(method, "system-op"), rtype)
    second = segments[1]
    if n == 2 and second == "_search" and method == "POST":
        return Access("search", rtype)
    if n == 2 and second == "_history":
        return Access("history-type", rtype)
    if second == "$everything" and n == 2:
        return Access("everything", rtype)
    if second == "$match" and n == 2:
        return Access("match", rtype)
    if second in _EXPORT_OPS or (n == 3 and segments[2] in _EXPORT_OPS):
        return Access("export", rtype)
    if second == "$lastn" and n == 2:
        return Access("search", rtype)  # a search of the type, kept in a patient's compartment like one
    if second == "$validate" and n == 2:
        return Access("create", rtype)  # stores nothing, but answers what a create would
    if second.startswith("$"):
        return Access("system-op", rtype)
    rid = second
    if n == 2:
        kind = {"GET": "read", "HEAD": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        return Access(kind.get(method, "system-op"), rtype, rid)
    if n == 3 and segments[2] == "_history":
        return Access("history-instance", rtype, rid)
    if n == 4 and segments[2] == "_history":
        return Access("vread", rtype, rid)
    if n == 3 and segments[2] == "$everything":
        return Access("everything", rtype, rid)
    if n == 3 and segments[2] == "$evaluate-measure":
        return Access("read", rtype, rid)  # aggregates of a Measure, small cells suppressed
    if n == 4 and segments[2] == "Observation" and segments[3] == "$lastn":
        return Access("search", "Observation")  # Patient/[id]/Observation/$lastn
    return Access("system-op", rtype, rid)


# Bulk Data: kick-off at system/type/Group level, then the job's status and files. The operation checks
# the exported types against the scopes and a job's owner; here only patient-context tokens are refused.
_EXPORT_OPS = ("$export", "$export-status", "$export-file")

_ACTION = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "search": "s",
    "history-type": "s",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "cond-update": "u",
    "cond-delete": "d",
    "everything": "r",
    "match": "s",
}


def _need(policy: ScopePolicy, rtype: str, action: str) -> str:
    reach = policy.reach(rtype, action)
    if reach is None:
        raise forbidden(msg("Token scopes do not allow {action} on {type}", action=action, type=rtype))
    return reach


def check_fhir(
    policy: ScopePolicy, access: Access, params: list[tuple[str, str]], facility: str | None, has_ine: bool
) -> Plan:
    """Check one FHIR access against the scopes; 403 FhirError when refused. `has_ine`: If-None-Exist."""
    plan = Plan(list(params))
    kind, rtype = access.kind, access.resource_type
    if kind in ("system-search", "system-history"):
        _system_level(policy, kind, params)
        _check_search_params(policy, None, params, patient_mode=False)
        return plan
    if kind == "export":
        if policy.patient is not None or not any(
            g.context != "patient" and "r" in g.actions for g in policy.grants
        ):
            raise forbidden(msg("Bulk export needs a system or user read scope"))
        return plan
    if kind in ("bundle", "system-op") or rtype is None:
        if not policy.can_all("c") or not policy.can_all("s"):
            raise forbidden(msg("This request needs a system or user scope on every resource type"))
        return plan
    reach = _need(policy, rtype, _ACTION[kind])
    patient_mode = reach == PATIENT
    if kind in ("cond-update", "cond-delete") or (kind == "create" and has_ine):
        # The criteria are a search: a token that may not search the type learns nothing from them.
        if _need(policy, rtype, "s") == PATIENT:
            patient_mode = True
    if patient_mode and kind in ("create", "update", "patch", "delete", "cond-update", "cond-delete"):
        raise forbidden(msg("Writes with patient-context scopes are not supported"))
    if patient_mode and kind in ("history-type", "match"):
        raise forbidden(msg("This request is not available with patient-context scopes"))
    if kind in ("search",):
        _check_search_params(policy, rtype, params, patient_mode)
        if patient_mode:
            plan.params = params + [_compartment_criterion(rtype, policy.patient or "")]
            plan.rewritten = True
    elif kind in ("read", "vread", "history-instance"):
        if patient_mode and access.resource_id is not None:
            plan.compartment_check = (rtype, access.resource_id)
    elif kind == "everything":
        _everything(policy, access, plan, patient_mode)
    elif kind in ("cond-update", "cond-delete"):
        _check_search_params(policy, rtype, params, patient_mode=False)
    if kind in ("create", "update", "patch", "delete", "cond-update", "cond-delete"):
        plan.read_blind = not policy.reads(rtype)
        if facility:
            plan.facility_new = kind in ("create", "update", "cond-update")
            if access.resource_id is not None:
                plan.facility_stored = (rtype, access.resource_id)
            elif kind in ("cond-update", "cond-delete"):
                plan.facility_criteria = (rtype, [(k, v) for k, v in params if k != "_format"])
    return plan


def _system_level(policy: ScopePolicy, kind: str, params: list[tuple[str, str]]) -> None:
    types = [t for k, v in params if k == "_type" for t in v.split(",") if t.strip()]
    if kind == "system-search" and types:
        for t in types:
            if _need(policy, t.strip(), "s") != ALL:
                raise forbidden(msg("This request is not available with patient-context scopes"))
        return
    if not policy.can_all("s"):
        raise forbidden(msg("System-wide search and history need a scope on every resource type (or _type)"))


def _compartment_criterion(rtype: str, patient: str) -> tuple[str, str]:
    """The search criterion that keeps a type's search inside the patient's compartment."""
    if rtype == "Patient":
        return ("_id", patient)
    params = patient_compartment().get(rtype)
    if not params:
        raise forbidden(msg("{type} is not in the patient compartment", type=rtype))
    # `patient` where the type has it (it covers subject and patient); otherwise the first parameter.
    name = "patient" if "patient" in params else params[0]
    return (name, f"Patient/{patient}")


def _everything(policy: ScopePolicy, access: Access, plan: Plan, patient_mode: bool) -> None:
    if patient_mode:
        ids = [access.resource_id] if access.resource_id else _patient_refs(plan.params)
        if any(i != policy.patient for i in ids):
            raise forbidden(msg("The token is bound to another patient"))
    readable = sorted(t for t in set(patient_compartment()) | {"Patient"} if policy.reads(t))
    asked = [t.strip() for k, v in plan.params if k == "_type" for t in v.split(",") if t.strip()]
    if asked:
        denied = [t for t in asked if not policy.reads(t)]
        keep = [t for t in asked if policy.reads(t)]
        if denied:
            plan.notes.append("types filtered")
    else:
        keep = readable
        if len(readable) < len(set(patient_compartment()) | {"Patient"}):
            plan.notes.append("types filtered")
    if not keep:
        raise forbidden(msg("Token scopes allow none of the resource types of $everything"))
    if "types filtered" in plan.notes:
        plan.params = [(k, v) for k, v in plan.params if k != "_type"] + [("_type", ",".join(keep))]
        plan.rewritten = True


def _patient_refs(params: list[tuple[str, str]]) -> list[str]:
    return [v.strip().rstrip("/").rsplit("/", 1)[-1] for k, v in params if k == "patient"]


def _targets(rtype: str | None, code: str) -> list[str] | None:
    """Target types of a reference parameter, None when unknown."""
    if rtype is None:
        return None
    param = get_registry().get(rtype, code)
    if param is None or param.type != "reference":
        return None
    return list(param.target) or None


def _require_reads(policy: ScopePolicy, types: list[str] | None, what: str) -> None:
    if types is None:
        if not (policy.can_all("s") or policy.can_all("r")):
            raise forbidden(msg("{what} may return resource types the token may not read", what=what))
        return
    denied = sorted(t for t in types if not policy.reads(t))
    if denied:
        raise forbidden(
            msg(
                "{what} would return {types}, which the token may not read",
                what=what,
                types=", ".join(denied),
            )
        )


def _check_search_params(
    policy: ScopePolicy, rtype: str | None, params: list[tuple[str, str]], patient_mode: bool
) -> None:
    """Refuse _include/_revinclude/chains/_has that could leak types the token may not read."""
    for name, value in params:
        base = name.split(":", 1)[0]
        if base in ("_include", "_revinclude"):
            if patient_mode:
                raise forbidden(msg("{what} is not available with patient-context scopes", what=base))
            if value == "*":
                _require_reads(policy, None, base)
                continue
            parts = value.split(":")
            if len(parts) < 2:
                continue  # the search answers 400
            if base == "_revinclude":
                _require_reads(policy, [parts[0]], base)
            elif len(parts) > 2:
                _require_reads(policy, [parts[2]], base)
            else:
                _require_reads(policy, None if parts[1] == "*" else _targets(parts[0], parts[1]), base)
        elif name.startswith("_has:"):
            if patient_mode:
                raise forbidden(msg("{what} is not available with patient-context scopes", what="_has"))
            # _has:Type:ref:[_has:Type2:ref2:]param
            pieces = name.split(":")
            types = [pieces[i + 1] for i, p in enumerate(pieces[:-1]) if p == "_has"]
            _require_reads(policy, types, "_has")
        elif "." in name:
            if patient_mode:
                raise forbidden(
                    msg("{what} is not available with patient-context scopes", what="chained search")
                )
            _check_chain(policy, rtype, name)


def _check_chain(policy: ScopePolicy, rtype: str | None, name: str) -> None:
    """Every type a chain walks through must be readable (the filter reveals their content)."""
    links = name.split(".")[:-1]
    current: str | None = rtype
    for link in links:
        code, _, target = link.partition(":")
        types = [target] if target else _targets(current, code)
        _require_reads(policy, types, "chained search")
        current = types[0] if types and len(types) == 1 else None

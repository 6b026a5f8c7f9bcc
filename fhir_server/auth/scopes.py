"""SMART scopes (v1 and v2 syntax) parsed once into a `ScopePolicy` that answers "may this token do X on T".

v1: `system/Patient.read`, `user/*.write`, `patient/Observation.*` (read = r+s, write = c+u+d).
v2: `system/Patient.rs`, `user/*.cruds`, `patient/Observation.rs` (letters c r u d s, in that order).
Scopes with a v2 query suffix (`patient/Observation.rs?category=laboratory`) grant nothing: granular
scopes are not implemented, and ignoring them is the safe direction. Unknown scopes are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTEXTS = ("system", "user", "patient")
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}
_V2 = re.compile(r"^c?r?u?d?s?$")
# Which scope context a grant came from: "patient" grants only reach the patient's compartment.
ALL = "all"
PATIENT = "patient"
# Types a wildcard scope does not reach: the access log is for auditors who ask for it by name
# (`user/AuditEvent.rs`), and never part of a clinical record such as a patient's `$everything`.
EXPLICIT_ONLY = frozenset({"AuditEvent"})


@dataclass(frozen=True)
class Grant:
    """One parsed scope: context (system/user/patient), resource type (or *), actions (subset of cruds)."""

    context: str
    resource_type: str
    actions: frozenset[str]


def parse_scope(scope: str) -> Grant | None:
    """Parse one SMART resource scope; None for anything else (openid, launch, granular v2 …)."""
    context, slash, rest = scope.partition("/")
    if not slash or context not in CONTEXTS or "?" in rest:
        return None
    rtype, dot, perm = rest.rpartition(".")
    if not dot or not rtype or not (rtype == "*" or rtype[:1].isupper() and rtype.isalnum()):
        return None
    actions = _V1.get(perm)
    if actions is None and perm and _V2.match(perm):
        actions = frozenset(perm)
    return Grant(context, rtype, actions) if actions else None


@dataclass(frozen=True)
class ScopePolicy:
    """What a token's scopes allow, with the patient context `patient/` grants are bound to."""

    grants: tuple[Grant, ...]
    patient: str | None = None

    @classmethod
    def parse(cls, scopes: frozenset[str] | set[str] | list[str], patient: str | None = None) -> ScopePolicy:
        """Parse every scope once; `patient/` grants are dropped when the token has no patient claim."""
        grants = [g for g in (parse_scope(s) for s in sorted(scopes)) if g is not None]
        if not patient:
            grants = [g for g in grants if g.context != "patient"]
        return cls(tuple(grants), patient or None)

    def reach(self, resource_type: str, action: str) -> str | None:
        """ALL when a system/user grant allows `action` on the type, PATIENT when only a patient grant
        does (the caller must then keep to the patient's compartment), None when nothing does."""
        best: str | None = None
        for g in self.grants:
            wildcard = g.resource_type == "*" and resource_type not in EXPLICIT_ONLY
            if action in g.actions and (wildcard or g.resource_type == resource_type):
                if g.context != "patient":
                    return ALL
                best = PATIENT
        return best

    def can(self, resource_type: str, action: str) -> bool:
        """Whether some grant allows the action on the type (in any context)."""
        return self.reach(resource_type, action) is not None

    def can_all(self, action: str) -> bool:
        """Whether a system/user grant allows the action on every type (`system/*.s` and the like)."""
        return any(
            g.context != "patient" and g.resource_type == "*" and action in g.actions for g in self.grants
        )

    def reads(self, resource_type: str) -> bool:
        """Whether resources of this type may be returned to the caller (read or search granted)."""
        return self.can(resource_type, "r") or self.can(resource_type, "s")

    def has_any(self) -> bool:
        """Whether at least one resource scope was granted."""
        return bool(self.grants)

"""Which meta.profile a resource gets under a VN Core profile set (rules are data in mappings/profiles/)."""

from __future__ import annotations

LOINC = "http://loinc.org"


def _codes(concepts: object, system: str | None = None) -> set[str]:
    """Codes of a CodeableConcept or a list of them (optionally only from one system)."""
    items = concepts if isinstance(concepts, list) else [concepts]
    return {
        c.get("code", "")
        for cc in items
        if isinstance(cc, dict)
        for c in cc.get("coding", [])
        if system is None or c.get("system") == system
    }


def profile_for(ps: dict, resource: dict) -> str | None:
    """The profile URL for a resource: the first matching `profile_rules` entry, else `profiles[type]`.

    A rule matches on `type` and, when given, a LOINC `code` of the resource (`loinc`) or a category
    code (`category`); a rule without `profile` keeps the type's default, `profile: null` means none."""
    res_type = resource.get("resourceType")
    default = (ps.get("profiles") or {}).get(res_type)
    for rule in ps.get("profile_rules") or ():
        if rule.get("type") != res_type:
            continue
        if "loinc" in rule and rule["loinc"] not in _codes(resource.get("code"), LOINC):
            continue
        if "category" in rule and rule["category"] not in _codes(resource.get("category")):
            continue
        return rule["profile"] if "profile" in rule else default
    return default

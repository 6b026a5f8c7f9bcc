"""_summary and _elements: trim a resource to the requested elements and mark it SUBSETTED."""

from __future__ import annotations

from fhir_server.search.registry import get_registry

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
_ALWAYS = ("resourceType", "id", "meta")


def _key_matches(key: str, names: set[str]) -> bool:
    if key.startswith("_"):
        key = key[1:]
    if key in names:
        return True
    # Choice elements are listed as deceased[x]; JSON has deceasedBoolean, deceasedDateTime, ...
    return any(
        n.endswith("[x]") and key.startswith(n[:-3]) and key[len(n) - 3 :][:1].isupper() for n in names
    )


def _subset(resource: dict, keep: set[str]) -> dict:
    out = {k: v for k, v in resource.items() if k in _ALWAYS or _key_matches(k, keep)}
    meta = dict(out.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("code") == "SUBSETTED" for t in tags if isinstance(t, dict)):
        tags.append(SUBSETTED)
    meta["tag"] = tags
    out["meta"] = meta
    return out


def shape(resource: dict, summary: str | None, elements: list[str] | None) -> dict:
    """Apply _summary (true|text|data) or _elements to one resource."""
    info = get_registry().summary.get(resource.get("resourceType", ""), {"summary": [], "required": []})
    required = set(info["required"])
    if summary == "true":
        return _subset(resource, set(info["summary"]) | required)
    if summary == "text":
        return _subset(resource, {"text"} | required)
    if summary == "data":
        return _subset(resource, {k for k in resource if k != "text"})
    if elements:
        # Accept "name", "Patient.name" and nested "name.family" (trimmed to the top-level element).
        wanted = set()
        for e in elements:
            parts = e.split(".")
            wanted.add(parts[1] if len(parts) > 1 and parts[0][:1].isupper() else parts[0])
        return _subset(resource, wanted | required)
    return resource

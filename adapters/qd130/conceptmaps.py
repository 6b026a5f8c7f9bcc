"""Export the QĐ130 code maps (mappings/qd130/codes.yaml) as FHIR R4 ConceptMap resources."""

from __future__ import annotations

from adapters.ids import deterministic_id
from mappings import load_yaml, profile_set


def qd130_conceptmaps(profile: str = "hl7vn") -> list[dict]:
    """One ConceptMap per code map that has a FHIR target system (others are listed as CodeSystems only)."""
    codes = load_yaml("qd130/codes.yaml")
    base = profile_set(profile)["code_systems"]["qd130"]
    out = []
    for name, spec in codes["maps"].items():
        target = spec.get("target")
        if not target:
            continue
        source = f"{base}/{spec['source']}"
        elements = []
        for code, entry in spec["codes"].items():
            el = {"code": str(code)}
            if entry.get("display"):
                el["display"] = entry["display"]
            if entry.get("target"):
                tgt = {"code": str(entry["target"]), "equivalence": "wider"}
                if entry.get("target_display"):
                    tgt["display"] = entry["target_display"]
                el["target"] = [tgt]
            else:
                el["target"] = [{"equivalence": "unmatched"}]
            elements.append(el)
        cm_id = deterministic_id("ConceptMap", "qd130", name)
        out.append(
            {
                "resourceType": "ConceptMap",
                "id": cm_id,
                "url": f"{base}/ConceptMap/{spec['source']}",
                "name": "Qd130" + "".join(p.capitalize() for p in name.split("_")),
                "title": spec.get("title", name),
                "status": "active",
                "description": "Generated from mappings/qd130/codes.yaml (Lienthong QĐ130 adapter).",
                "sourceUri": source,
                "targetUri": target,
                "group": [{"source": source, "target": target, "element": elements}],
            }
        )
    return out


def qd130_conceptmap_bundle(profile: str = "hl7vn") -> dict:
    """Transaction Bundle that PUTs every QĐ130 ConceptMap (load into the server to inspect them)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": cm, "request": {"method": "PUT", "url": f"ConceptMap/{cm['id']}"}}
            for cm in qd130_conceptmaps(profile)
        ],
    }

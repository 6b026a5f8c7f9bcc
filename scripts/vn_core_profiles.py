"""Extract the 2020-21 Ministry VN Core guide (github.com/hl7vn/vn-core-ig, CC0) for devtools/profiles.

The guide's source is hand-written XML: StructureDefinitions with a *differential* only, ValueSets and
CodeSystems. This keeps what a validator needs — per profile its url, type, base and the differential
elements' constraints (cardinality, slicing, fixed/pattern values, bindings, type profiles) — and the codes
of the guide's own value sets, as one compact JSON file.

Usage: python scripts/vn_core_profiles.py --repo /path/to/vn-core-ig [--commit SHA]
Writes devtools/profiles/data/vn-core-ehealth.json.gz
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os

from lxml import etree

NS = {"f": "http://hl7.org/fhir"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "devtools", "profiles", "data", "vn-core-ehealth.json.gz")
_PRIMITIVE_LIKE = ("fixed", "pattern")


def _value(node: etree._Element) -> object:
    """FHIR XML element → JSON value (primitives from @value, complex types as objects, repeats as lists)."""
    if node.get("value") is not None and not len(node):
        return node.get("value")
    out: dict = {}
    for child in node:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        out.setdefault(name, []).append(_value(child))
    return {k: (v if k in ("coding", "extension", "given", "line") else v[0]) for k, v in out.items()}


def _element(el: etree._Element) -> dict:
    out: dict = {"id": el.get("id"), "path": el.find("f:path", NS).get("value")}
    for name in ("sliceName", "min", "max"):
        node = el.find(f"f:{name}", NS)
        if node is not None:
            out[name] = int(node.get("value")) if name == "min" else node.get("value")
    for child in el:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        if name.startswith(_PRIMITIVE_LIKE):
            kind = "fixed" if name.startswith("fixed") else "pattern"
            out[kind] = {"type": name[len(kind) :], "value": _value(child)}
    slicing = el.find("f:slicing", NS)
    if slicing is not None:
        out["slicing"] = {
            "discriminator": [
                {"type": d.find("f:type", NS).get("value"), "path": d.find("f:path", NS).get("value")}
                for d in slicing.findall("f:discriminator", NS)
            ],
            "rules": (
                slicing.find("f:rules", NS).get("value")
                if slicing.find("f:rules", NS) is not None
                else "open"
            ),
        }
    binding = el.find("f:binding", NS)
    if binding is not None:
        vs = binding.find("f:valueSet", NS)
        out["binding"] = {
            "strength": binding.find("f:strength", NS).get("value"),
            "valueSet": vs.get("value") if vs is not None else None,
        }
    types = [
        {
            "code": t.find("f:code", NS).get("value"),
            "profile": [p.get("value") for p in t.findall("f:profile", NS)],
        }
        for t in el.findall("f:type", NS)
    ]
    if types:
        out["type"] = types
    return out


def _codes_of(root: etree._Element) -> dict[str, list[str]]:
    """CodeSystem concepts (nested) → {system url: [codes]}."""
    url = root.find("f:url", NS).get("value")
    codes: list[str] = []

    def walk(node: etree._Element) -> None:
        for c in node.findall("f:concept", NS):
            codes.append(c.find("f:code", NS).get("value"))
            walk(c)

    walk(root)
    return {url: codes}


def extract(repo: str) -> dict:
    """Profiles, value sets and code systems of the guide."""
    res = os.path.join(repo, "input", "resources")
    profiles, valuesets, codesystems = {}, {}, {}
    for path in sorted(glob.glob(os.path.join(res, "*.xml"))):
        root = etree.parse(path, etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
        kind = etree.QName(root).localname
        url_node = root.find("f:url", NS)
        if url_node is None:
            continue
        url = url_node.get("value")
        if kind == "StructureDefinition":
            profiles[url] = {
                "id": url.rsplit("/", 1)[-1],  # two of the guide's files have no <id>
                "type": root.find("f:type", NS).get("value"),
                "kind": root.find("f:kind", NS).get("value"),
                "base": root.find("f:baseDefinition", NS).get("value"),
                "elements": [_element(e) for e in root.findall("f:differential/f:element", NS)],
            }
        elif kind == "CodeSystem":
            content = root.find("f:content", NS)
            codesystems[url] = {
                "content": content.get("value") if content is not None else None,
                "codes": _codes_of(root)[url],
            }
        elif kind == "ValueSet":
            includes = []
            for inc in root.findall("f:compose/f:include", NS):
                system = inc.find("f:system", NS)
                includes.append(
                    {
                        "system": system.get("value") if system is not None else None,
                        "codes": [c.find("f:code", NS).get("value") for c in inc.findall("f:concept", NS)],
                        "filtered": inc.find("f:filter", NS) is not None,
                        "valueSet": [v.get("value") for v in inc.findall("f:valueSet", NS)],
                    }
                )
            valuesets[url] = {"include": includes}
    return {"profiles": profiles, "valuesets": valuesets, "codesystems": codesystems}


def main() -> None:
    """Write the compact guide file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="clone of github.com/hl7vn/vn-core-ig")
    ap.add_argument("--commit", default="8e6b6e0")
    a = ap.parse_args()
    data = extract(a.repo)
    data["source"] = {
        "repository": "https://github.com/hl7vn/vn-core-ig",
        "commit": a.commit,
        "license": "CC0 (HL7 FHIR license, LICENSE file of the repository)",
        "note": "differential elements and value-set codes only; generated by scripts/vn_core_profiles.py",
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with gzip.open(OUT, "wt", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    print(f"{OUT}: {len(data['profiles'])} profiles, {len(data['valuesets'])} value sets")


if __name__ == "__main__":
    main()

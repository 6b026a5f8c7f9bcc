"""Regenerate the FHIR R4 required-binding data from the official definitions (npm hl7.fhir.r4.examples@4.0.1).

The core package hl7.fhir.r4.core is not published on the npm registry; the examples package carries the
same R4 4.0.1 StructureDefinitions, ValueSets and CodeSystems (it is the whole spec as resources, CC0).

Writes fhir_server/data/required-bindings-r4.json.gz:
  types      per resource type, complex datatype and backbone element (named by its path): the JSON keys
             that lead to a required binding, as key -> [child type, value set key or null(, FHIRPath name)]
  valuesets  value set key -> url, name and either the allowed codes per system, a syntactic check
             (mime types, ISO 4217 currencies) or only the systems (UCUM), with the reason
  skipped    required bindings that cannot be checked without a terminology server, with the reason

Usage: python scripts/fetch_required_bindings.py [--package-dir DIR]  (default: runs `npm pack` into a temp dir)
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import subprocess
import tarfile
import tempfile

PACKAGE = "hl7.fhir.r4.examples@4.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fhir_server/data/required-bindings-r4.json.gz")
CODED = {"code", "Coding", "CodeableConcept"}
# Value sets over code systems the package does not define (content "not-present" or no CodeSystem at all):
# an honest check needs an external terminology server; the simple grammars are checked instead.
NOT_ENUMERABLE = {
    "http://hl7.org/fhir/ValueSet/mimetypes": (
        "mime",
        "all of BCP-13 (IANA media types, urn:ietf:bcp:13), no CodeSystem in R4; checked as an RFC 6838 "
        "type/subtype (parameters after ';' not checked)",
    ),
    "http://hl7.org/fhir/ValueSet/currencies": (
        "currency",
        "all of ISO 4217 (urn:iso:std:iso:4217), no CodeSystem in R4; checked as three capital letters",
    ),
    "http://hl7.org/fhir/ValueSet/ucum-units": (
        "system",
        "all of UCUM (http://unitsofmeasure.org), an open grammar; only checked that a coding is from UCUM",
    ),
}
# The element comments of these two say: '"xml", "json" and "ttl" are allowed, which describe the simple
# encodings described in the specification'. Checked against the comment text when generating.
SHORT_FORMATS = ("xml", "json", "ttl")
SHORT_FORMAT_SENTENCE = '"xml", "json" and "ttl" are allowed'


def _unpack(tmp: str) -> str:
    """Download the package with npm and extract it; return the package directory."""
    subprocess.run(["npm", "pack", PACKAGE], cwd=tmp, check=True, capture_output=True)
    tgz = glob.glob(os.path.join(tmp, "*.tgz"))[0]
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp, filter="data")
    return os.path.join(tmp, "package")


def _load(pkg: str, prefix: str) -> list[dict]:
    """All JSON resources of the package whose file name starts with prefix."""
    docs = []
    for path in sorted(glob.glob(os.path.join(pkg, f"{prefix}-*.json"))):
        with open(path, encoding="utf-8") as fh:
            docs.append(json.load(fh))
    return docs


def _concept_codes(concepts: list[dict]) -> list[str]:
    """Codes of a CodeSystem concept tree, nested concepts included."""
    out: list[str] = []
    for c in concepts:
        out.append(c["code"])
        out.extend(_concept_codes(c.get("concept") or []))
    return out


class Expander:
    """Expands ValueSet.compose over the CodeSystems of the package; raises ValueError when it cannot."""

    def __init__(self, valuesets: dict[str, dict], codesystems: dict[str, dict]):
        self.valuesets = valuesets
        self.codesystems = codesystems

    def expand(self, url: str) -> dict[str, set[str]]:
        """system -> codes of the value set at url."""
        vs = self.valuesets.get(url)
        if vs is None:
            raise ValueError(f"value set {url} is not defined in the R4 package (external terminology)")
        compose = vs.get("compose") or {}
        codes: dict[str, set[str]] = {}
        for inc in compose.get("include") or []:
            for system, found in self._part(inc).items():
                codes.setdefault(system, set()).update(found)
        for exc in compose.get("exclude") or []:
            for system, found in self._part(exc).items():
                codes.get(system, set()).difference_update(found)
        return {s: c for s, c in codes.items() if c}

    def _part(self, inc: dict) -> dict[str, set[str]]:
        system = inc.get("system")
        if inc.get("filter"):
            raise ValueError(f"filter {inc['filter']} on {system} needs a terminology server")
        if system and inc.get("concept"):
            part = {system: {c["code"] for c in inc["concept"]}}
        elif system:
            cs = self.codesystems.get(system)
            if cs is None or cs.get("content") != "complete":
                content = cs.get("content") if cs else "no CodeSystem in R4"
                raise ValueError(f"all codes of {system} ({content})")
            part = {system: set(_concept_codes(cs.get("concept") or []))}
        else:
            part = None
        for ref in inc.get("valueSet") or []:
            other = self.expand(ref.split("|")[0])
            if part is None:
                part = other
            else:  # system and value set together: the intersection
                part = {s: c & other.get(s, set()) for s, c in part.items()}
        return part or {}


def _json_key(name: str, type_code: str) -> str:
    """JSON property of a choice element for one type: value[x] + Quantity -> valueQuantity."""
    return name[:-3] + type_code[0].upper() + type_code[1:]


def _base_definitions(pkg: str) -> dict[str, dict]:
    """The base StructureDefinitions of resources and complex datatypes (no profiles), by type name."""
    out = {}
    for sd in _load(pkg, "StructureDefinition"):
        if sd.get("kind") in ("resource", "complex-type") and sd.get("derivation", "specialization") == (
            "specialization"
        ):
            out[sd["type"]] = sd
    return out


def _trees(sds: dict[str, dict]) -> tuple[dict[str, dict], dict[str, list[str]], dict[str, str]]:
    """Per type: key -> [child type, value set url or None, FHIRPath name]; bound paths per value set."""
    trees: dict[str, dict] = {}
    bound: dict[str, list[str]] = {}
    comments: dict[str, str] = {}
    for tname, sd in sds.items():
        elements = sd["snapshot"]["element"]
        with_children = {e["path"].rsplit(".", 1)[0] for e in elements if "." in e["path"]}
        trees.setdefault(tname, {})
        for e in elements:
            path = e["path"]
            if "." not in path:
                continue
            parent, name = path.rsplit(".", 1)
            owner = trees.setdefault(parent, {})
            binding = e.get("binding") or {}
            vs = binding.get("valueSet", "").split("|")[0] if binding.get("strength") == "required" else None
            if "contentReference" in e:
                owner[name] = [e["contentReference"].lstrip("#"), None, name]
                continue
            if path in with_children:  # backbone element: its own tree, named by its path
                owner[name] = [path, None, name]
                continue
            codes = [t["code"] for t in e.get("type") or []]
            choice = name.endswith("[x]")
            for code in codes:
                key = _json_key(name, code) if choice else name
                fhirpath = f"{name[:-3]}.ofType({code})" if choice else name
                owner[key] = [code, vs if code in CODED else None, fhirpath]
            if vs:
                bound.setdefault(vs, []).append(path)
                comments[path] = e.get("comment") or ""
    return trees, bound, comments


def _prune(trees: dict[str, dict]) -> dict[str, dict]:
    """Keep only the keys that can lead to a bound element (contained resources always can)."""
    relevant = {"Resource"}
    changed = True
    while changed:
        changed = False
        for tname, tree in trees.items():
            if tname not in relevant and any(v[1] or v[0] in relevant for v in tree.values()):
                relevant.add(tname)
                changed = True
    out = {}
    for tname in sorted(relevant - {"Resource"}):
        kept = {}
        for key, (child, vs, fhirpath) in sorted(trees[tname].items()):
            if vs or child in relevant:
                kept[key] = [child, vs] if fhirpath == key else [child, vs, fhirpath]
        out[tname] = kept
    return out


def build(pkg: str) -> dict:
    """Collect the required bindings of the base R4 definitions and expand their value sets."""
    sds = _base_definitions(pkg)
    valuesets = {vs["url"]: vs for vs in _load(pkg, "ValueSet")}
    codesystems = {cs["url"]: cs for cs in _load(pkg, "CodeSystem")}
    expander = Expander(valuesets, codesystems)
    trees, bound, comments = _trees(sds)

    keys: dict[str, str | None] = {}
    out_vs: dict[str, dict] = {}
    skipped = []
    for url in sorted(bound):
        key = url.rsplit("/", 1)[-1]
        assert key not in out_vs, f"value set key collision: {key}"
        keys[url] = key
        name = (valuesets.get(url) or {}).get("name") or key
        entry: dict = {"url": url, "name": name}
        if url in NOT_ENUMERABLE:
            check, reason = NOT_ENUMERABLE[url]
            if check == "system":
                entry["systems"] = sorted(inc["system"] for inc in valuesets[url]["compose"]["include"])
            else:
                entry["syntax"] = check
            skipped.append({"valueSet": url, "reason": reason, "elements": sorted(bound[url])})
            out_vs[key] = entry
            continue
        try:
            entry["codes"] = {s: sorted(c) for s, c in sorted(expander.expand(url).items())}
        except ValueError as exc:
            skipped.append({"valueSet": url, "reason": str(exc), "elements": sorted(bound[url])})
            keys[url] = None
            continue
        out_vs[key] = entry

    # Mime-type elements whose R4 definition also allows the short format names.
    short = "mimetypes+formats"
    for tree_name, tree in trees.items():
        for k, v in tree.items():
            path = f"{tree_name}.{k}"
            if v[1] == "http://hl7.org/fhir/ValueSet/mimetypes" and SHORT_FORMAT_SENTENCE in comments.get(
                path, ""
            ):
                v[1] = short
                out_vs[short] = dict(out_vs["mimetypes"], also=list(SHORT_FORMATS))
    for tree in trees.values():
        for v in tree.values():
            if v[1] and v[1] != short:
                v[1] = keys[v[1]]
    types = _prune(trees)
    return {
        "_source": f"FHIR R4 4.0.1 base StructureDefinitions, ValueSets and CodeSystems, npm package {PACKAGE} "
        "(HL7 International, http://hl7.org/fhir/R4); generated by scripts/fetch_required_bindings.py",
        "_license": "CC0-1.0 (the FHIR specification content is published by HL7 under CC0)",
        "types": types,
        "valuesets": out_vs,
        "skipped": skipped,
        "stats": {
            "required_bindings": sum(len(p) for p in bound.values()),
            "checked_bindings": sum(len(p) for u, p in bound.items() if keys.get(u)),
            "enumerated_bindings": sum(
                len(p) for u, p in bound.items() if "codes" in out_vs.get(keys.get(u), {})
            ),
            "value_sets": len(bound),
            "types": len(types),
        },
    }


def write(data: dict) -> None:
    """Write compact JSON, gzip-compressed, with a fixed mtime so reruns are byte-identical."""
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    with open(OUT, "wb") as fh:
        fh.write(gzip.compress(raw, compresslevel=9, mtime=0))
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT)} bytes, {len(raw)} uncompressed)")
    print(json.dumps(data["stats"]))
    for s in data["skipped"]:
        print(f"skipped {s['valueSet']}: {s['reason']} ({len(s['elements'])} elements)")


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package-dir", help="an already unpacked npm package directory")
    args = ap.parse_args()
    if args.package_dir:
        write(build(args.package_dir))
        return
    with tempfile.TemporaryDirectory() as tmp:
        write(build(_unpack(tmp)))


if __name__ == "__main__":
    main()

"""Regenerate the vendored FHIR R4 search data from the official npm package hl7.fhir.r4.examples@4.0.1.

Writes:
  fhir_server/search/data/search-parameters-r4.json.gz  (every SearchParameter of Bundle-searchParams.json)
  fhir_server/search/data/summary-elements-r4.json.gz   (isSummary / required top-level elements per type)
  fhir_server/search/data/choice-elements-r4.json.gz    (names of choice elements, value[x] -> "value")
  tests/conformance/data/r4-examples.json.gz            (official example resources used by conformance tests)

Usage: python scripts/fetch_search_params.py [--package-dir DIR]  (default: runs `npm pack` into a temp dir)
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
SP_KEYS = (
    "url",
    "id",
    "code",
    "base",
    "type",
    "expression",
    "target",
    "component",
    "modifier",
    "comparator",
    "multipleOr",
    "multipleAnd",
    "chain",
    "description",
    "xpathUsage",
)
# Conformance/terminology resources and Bundles are not the clinical data the conformance tests exercise.
SKIP_EXAMPLES = {
    "SearchParameter",
    "ValueSet",
    "CodeSystem",
    "StructureDefinition",
    "ConceptMap",
    "OperationDefinition",
    "CapabilityStatement",
    "ImplementationGuide",
    "NamingSystem",
    "CompartmentDefinition",
    "StructureMap",
    "GraphDefinition",
    "MessageDefinition",
    "TerminologyCapabilities",
    "Bundle",
}


def _unpack(tmp: str) -> str:
    """Download the package with npm and extract it; return the package directory."""
    subprocess.run(["npm", "pack", PACKAGE], cwd=tmp, check=True, capture_output=True)
    tgz = glob.glob(os.path.join(tmp, "*.tgz"))[0]
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp, filter="data")
    return os.path.join(tmp, "package")


def _write(path: str, data: object) -> None:
    """Write compact JSON, gzip-compressed, with a fixed mtime so reruns are byte-identical."""
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    with open(path, "wb") as fh:
        fh.write(gzip.compress(raw, compresslevel=9, mtime=0))
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def build(pkg: str) -> None:
    """Extract search parameters, summary elements and examples from an unpacked package."""
    with open(os.path.join(pkg, "Bundle-searchParams.json"), encoding="utf-8") as fh:
        bundle = json.load(fh)
    params = [{k: e["resource"][k] for k in SP_KEYS if k in e["resource"]} for e in bundle["entry"]]
    _write(os.path.join(ROOT, "fhir_server/search/data/search-parameters-r4.json.gz"), params)

    summary: dict[str, dict[str, list[str]]] = {}
    choices: set[str] = set()
    examples = []
    for path in sorted(glob.glob(os.path.join(pkg, "*.json"))):
        with open(path, encoding="utf-8") as fh:
            try:
                doc = json.load(fh)
            except ValueError:
                continue
        rtype = doc.get("resourceType") if isinstance(doc, dict) else None
        if rtype == "StructureDefinition" and doc.get("kind") in ("resource", "complex-type"):
            choices |= {
                e["path"].rsplit(".", 1)[-1][:-3]
                for e in (doc.get("snapshot") or {}).get("element", [])
                if e["path"].endswith("[x]")
            }
        if (
            rtype == "StructureDefinition"
            and doc.get("kind") == "resource"
            and doc.get("derivation") == "specialization"
        ):
            top = [e for e in doc["snapshot"]["element"] if e["path"].count(".") == 1]
            summary[doc["type"]] = {
                "summary": [e["path"].split(".", 1)[1] for e in top if e.get("isSummary")],
                "required": [e["path"].split(".", 1)[1] for e in top if e.get("min", 0) > 0],
            }
        elif rtype and rtype not in SKIP_EXAMPLES and "id" in doc:
            examples.append(doc)
    _write(os.path.join(ROOT, "fhir_server/search/data/summary-elements-r4.json.gz"), summary)
    _write(os.path.join(ROOT, "fhir_server/search/data/choice-elements-r4.json.gz"), sorted(choices))
    _write(os.path.join(ROOT, "tests/conformance/data/r4-examples.json.gz"), examples)


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package-dir", help="an already unpacked npm package directory")
    args = ap.parse_args()
    if args.package_dir:
        build(args.package_dir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(_unpack(tmp))


if __name__ == "__main__":
    main()

"""Pass rate of Lienthong's output against the 2020-21 Ministry VN Core guide (profile set `ehealth`).

Maps the QĐ130 samples, a synthetic dataset and the HL7 v2 test corpus with LIENTHONG's `ehealth` profile
set, validates every resource that claims one of the guide's profiles, and prints per profile how many pass
(no error) and the most frequent errors.

    python -m devtools.profiles.report [--visits 200]
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from adapters.hl7v2.plugin import Hl7v2Adapter
from adapters.qd130.plugin import Qd130Adapter
from adapters.synth import generate

from .validator import Validator

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path("/work/shared/standards/samples")
if not SAMPLES.exists():
    SAMPLES = ROOT.parent / "shared" / "standards" / "samples"
CORPUS = ROOT / "tests" / "adapters" / "hl7v2" / "corpus"


def resources(visits: int = 200) -> dict[str, list[dict]]:
    """Resources by source ('qd130 samples', 'qd130 synthetic', 'hl7v2 corpus'), mapped with `ehealth`."""
    opts = {"profile_set": "ehealth"}
    out: dict[str, list[dict]] = {"qd130 samples": [], "qd130 synthetic": [], "hl7v2 corpus": []}
    qd = Qd130Adapter()
    payloads = [
        ("qd130 samples", p.read_bytes())
        for p in sorted(SAMPLES.glob("qd130-*.xml"))
        if "decoded" not in p.name
    ]
    payloads += [("qd130 synthetic", v.xml) for v in generate(hospitals=3, visits=visits, seed=11).visits]
    for source, payload in payloads:
        for rec in qd.parse(payload, opts).records:
            mapped = qd.to_fhir(rec, opts)
            if mapped.bundle:
                out[source] += [e["resource"] for e in mapped.bundle["entry"]]
    v2 = Hl7v2Adapter()
    for path in sorted(CORPUS.glob("*.hl7")):
        for rec in v2.parse(path.read_bytes()).records:
            mapped = v2.to_fhir(rec, opts)
            if mapped.bundle:
                out["hl7v2 corpus"] += [e["resource"] for e in mapped.bundle["entry"]]
    return out


def main() -> None:
    """Print pass rates and the most frequent errors."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=200)
    a = ap.parse_args()
    v = Validator.ehealth()
    for source, items in resources(a.visits).items():
        claimed = [r for r in items if any(p in v.profiles for p in (r.get("meta") or {}).get("profile", []))]
        per: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        errors: collections.Counter = collections.Counter()
        for r in claimed:
            issues = v.validate(r)
            bad = [i for i in issues if i.severity == "error"]
            key = r["meta"]["profile"][0].rsplit("/", 1)[-1]
            per[key][0] += 1
            per[key][1] += not bad
            errors.update(f"{key}: {i.element}: {i.message[:90]}" for i in bad)
        passed = sum(p for _, p in per.values())
        print(f"\n{source}: {len(items)} resources, {len(claimed)} claim a guide profile, {passed} pass")
        for key, (n, ok) in sorted(per.items()):
            print(f"  {key:<45} {ok:>5}/{n:<5}")
        for text, n in errors.most_common(12):
            print(f"    {n:>5}× {text}")


if __name__ == "__main__":
    main()

"""Rebuild the QĐ130 files in samples/qd130/ (synthetic, invented people; see samples/README.md).

    python scripts/make_samples.py

The visits come from the project's synthetic generator (adapters/synth), completed with the fields
the generator leaves out (district/ward of residence from mappings/admin_units, the four "other
source" amounts), so that `lienthong check samples/qd130/` finds nothing wrong in the good files.
One file breaks a date on purpose. Output is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.qd130.check import check_bytes  # noqa: E402
from adapters.synth import generate  # noqa: E402
from adapters.synth.envelope import build_envelope, read_files  # noqa: E402
from adapters.synth.violations import Dossier  # noqa: E402
from mappings import admin_units  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "samples" / "qd130"
SEED, VISITS = 11, 60
BAD_DATE = "202513450800"  # month 13, day 45: the mistake the error message must point at


def _complete(xml: bytes) -> Dossier:
    """The generator's visit with the fields it omits filled in (residence district/ward, other sources)."""
    d = Dossier(xml)
    prov = d.need("XML1", 0, "MATINH_CU_TRU")
    ward = next(w for w in admin_units.wards() if w.province_code == prov and w.district_code)
    district = admin_units.district(ward.district_code)
    province = admin_units.province(prov)
    street = (d.get("XML1", 0, "DIA_CHI") or "").split(",")[0]
    d.set("XML1", 0, "MAHUYEN_CU_TRU", ward.district_code)
    d.set("XML1", 0, "MAXA_CU_TRU", ward.code)
    d.set("XML1", 0, "DIA_CHI", f"{street}, {ward.name}, {district.name}, {province.name}")
    for loai in ("XML2", "XML3"):
        if d.has(loai):
            for i in range(len(d.records(loai))):
                for part in ("NSNN", "VTNN", "VTTN", "CL"):
                    d.set(loai, i, f"T_NGUONKHAC_{part}", "0")
    return d


def main() -> None:
    """Write the sample files and print what `check` says about each."""
    ds = generate(hospitals=2, visits=VISITS, seed=SEED, missing_cccd_rate=0.0)
    a, b = (h[0] for h in ds.hospitals)
    by_person: dict[str, list] = {}
    for v in ds.visits:
        by_person.setdefault(v.person_id, []).append(v)
    # A person seen as an outpatient at one hospital and admitted at the other: the linking story.
    person, out_visit, in_visit = next(
        (pid, o, i)
        for pid, vs in sorted(by_person.items())
        for o in vs
        for i in vs
        if o.facility == a and o.kind == "outpatient" and i.facility == b and i.kind == "inpatient"
    )
    others = [v for v in ds.visits if v.person_id != person and v.facility == a and v.kind == "outpatient"]
    OUT.mkdir(parents=True, exist_ok=True)
    files = {
        f"{a}-ngoai-tru.xml": _complete(out_visit.xml).to_bytes(),
        f"{b}-noi-tru.xml": _complete(in_visit.xml).to_bytes(),
    }
    good, bad = _complete(others[0].xml), _complete(others[1].xml)
    bad.set("XML1", 0, "NGAY_RA", BAD_DATE)
    hosos = [read_files(good.to_bytes())[0], read_files(bad.to_bytes())[0]]
    files[f"{a}-hai-ho-so-mot-loi.xml"] = build_envelope(a, hosos, good.created)
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        report = check_bytes(data, name, lang="en")
        print(f"{name}: {report.records} HOSO, {report.errors} error(s), {report.warnings} warning(s)")
        for f in report.findings:
            print(f"   {f.rule_id} {f.table} STT={f.stt} {f.field}: {f.message_en}")


if __name__ == "__main__":
    main()

"""Regenerate mappings/admin_units/ (Vietnam's units before and after the 1 Jul 2025 reform, and the crosswalk).

Sources (both MIT, see mappings/admin_units/README.md):
  vietnamadminunits 1.0.4 (PyPI wheel): 63-province list (provinces, districts, wards with GSO codes),
      34-province list (QĐ 19/2025 codes) and its old -> new ward mapping (name-keyed, joined to codes here).
  dvhcvn/20250701 (GitHub, commit dd94887): old -> new ward mapping by code (mapping/splits.json) with the
      "full"/"partial" extent of each pair (mapping/merges.json), extracted from the 34 UBTVQH resolutions.

Usage:
  python scripts/build_admin_units.py --dvhcvn DIR [--wheel vietnamadminunits-1.0.4-py3-none-any.whl]
DIR is a checkout of https://github.com/dvhcvn/20250701 (mapping/*.json and output/ are read). Without
--wheel the wheel is fetched with `pip download` and its sha256 checked.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "mappings", "admin_units")
VAU = "vietnamadminunits==1.0.4"
VAU_SHA256 = "737ee3662e877290386c1c45ed4d71f2e5fae34ab6fb9c64bfb4cb74b216ea35"
REFORM = "2025-07-01"
# dvhcvn took new codes from letter 1027/CTK-CSCL; where the final list (QĐ 19/2025, as carried by
# vietnamadminunits) differs, the final code wins. 23737 is also the old code of Xã Ia Mơ Nông (Chư Păh).
DVHCVN_NEW_CODE_FIXES = {"23737": "23938"}  # Xã Ia Mơ, Gia Lai


def nfc(text: str | None) -> str:
    """Unicode NFC with surrounding spaces removed (the sources mix composed and decomposed accents)."""
    return unicodedata.normalize("NFC", (text or "").strip())


def fetch_wheel(dest: str) -> str:
    """pip download the pinned wheel into dest and verify its sha256."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", VAU, "-d", dest],
        check=True,
    )
    return glob.glob(os.path.join(dest, "vietnamadminunits-*.whl"))[0]


def read_wheel(path: str) -> tuple[sqlite3.Connection, dict]:
    """The wheel's SQLite dataset (copied to a temp file) and its converter mapping."""
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != VAU_SHA256:
        sys.exit(f"{path}: sha256 {digest} is not the pinned {VAU_SHA256}")
    with zipfile.ZipFile(path) as zf:
        db_bytes = zf.read("vietnamadminunits/data/dataset.db")
        converter = json.loads(zf.read("vietnamadminunits/data/converter_2025.json"))
    tmp = tempfile.NamedTemporaryFile(suffix=".db", delete=False)
    tmp.write(db_bytes)
    tmp.close()
    return sqlite3.connect(tmp.name), converter


def province_type(name: str) -> str:
    """'Thành phố' for centrally governed cities, else 'Tỉnh' (from the official name's prefix)."""
    return "Thành phố" if name.startswith("Thành phố") else "Tỉnh"


def write_csv(name: str, header: list[str], rows: list[list], comment: str) -> str:
    """Write one CSV with '#' comment lines stating source and date (all files stay under 1 MB: no gzip)."""
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for line in comment.strip().splitlines():
            fh.write(f"# {line}\n")
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


HEADER = (
    "Source: {src}\n"
    "License: MIT (see mappings/admin_units/README.md); codes and names are those of the official lists.\n"
    "Regenerate: python scripts/build_admin_units.py --dvhcvn DIR"
)
SRC_VAU = "vietnamadminunits 1.0.4 (PyPI, MIT; GSO list of 2025-07-18, QĐ 19/2025/QĐ-TTg list)"
SRC_BOTH = SRC_VAU + " + dvhcvn/20250701 @dd94887 (GitHub, MIT)"


def main() -> None:
    """Read both sources, cross-check them, write the CSV files and print row counts."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dvhcvn", required=True, help="checkout of github.com/dvhcvn/20250701")
    ap.add_argument("--wheel", help="vietnamadminunits-1.0.4-py3-none-any.whl (default: pip download)")
    args = ap.parse_args()
    wheel = args.wheel or fetch_wheel(tempfile.mkdtemp())
    db, conv = read_wheel(wheel)
    splits = json.load(open(os.path.join(args.dvhcvn, "mapping", "splits.json"), encoding="utf-8"))["data"]
    merges = json.load(open(os.path.join(args.dvhcvn, "mapping", "merges.json"), encoding="utf-8"))["data"]
    os.makedirs(OUT, exist_ok=True)

    # --- old units (63 provinces) -------------------------------------------------------------
    old_prov: dict[str, str] = {}
    old_dist: dict[str, tuple[str, str, str]] = {}
    old_ward: dict[str, list[str]] = {}
    old_key: dict[str, tuple[str, str, str]] = {}  # vau composite key -> (province, district, ward code)
    rows = db.execute(
        "SELECT provinceCode, province, districtCode, district, districtType, wardCode, ward, wardType,"
        " provinceKey, districtKey, wardKey FROM admin_units_legacy"
    )
    for pc, pn, dc, dn, dt, wc, wn, wt, pk, dk, wk in rows:
        old_prov[pc] = nfc(pn)
        old_dist[dc] = (nfc(dn), nfc(dt), pc)
        if wc:
            old_ward[wc] = [nfc(wn), nfc(wt), dc, pc, "", "vietnamadminunits"]
        old_key[f"{pk}_{dk}_{wk or ''}"] = (pc, dc, wc or "")

    # dvhcvn's old list is the GSO list of 2025-03-01: a few wards it has were gone by July (merged
    # earlier in 2025). They are kept so that early-2025 exports still resolve; their district comes
    # from dvhcvn's per-ward output paths output/<province>/<district>/<ward>.json.
    dv_district = {}
    for path in glob.glob(os.path.join(args.dvhcvn, "output", "*", "*", "*.json")):
        parts = path.split(os.sep)
        dv_district[parts[-1][:-5]] = parts[-2]
    dv_old_names = {}
    for prov in splits:
        for w in prov["level3s"]:
            code, name = w["level3_id"], nfc(w["name"])
            dv_old_names[code] = name
            if code in old_ward:
                if name.casefold() != old_ward[code][0].casefold():
                    old_ward[code][4] = name  # the other spelling, for name lookups
            else:
                wtype = next(t for t in ("Thị trấn", "Phường", "Xã") if name.startswith(t))
                old_ward[code] = [name, wtype, dv_district[code], prov["level1_id"], "", "dvhcvn-20250301"]

    # --- new units (34 provinces) -------------------------------------------------------------
    new_prov: dict[str, str] = {}
    new_ward: dict[str, tuple[str, str, str]] = {}
    new_key: dict[tuple[str, str], str] = {}
    for pc, pn, wc, wn, wt, pk, wk in db.execute(
        "SELECT provinceCode, province, wardCode, ward, wardType, provinceKey, wardKey FROM admin_units"
    ):
        new_prov[pc] = nfc(pn)
        new_ward[wc] = (nfc(wn), nfc(wt), pc)
        new_key[(pk, wk)] = wc
    old_pkey = {
        pk: pc for pk, pc in db.execute("SELECT DISTINCT provinceKey, provinceCode FROM admin_units_legacy")
    }
    new_pkey = {pk: pc for pk, pc in db.execute("SELECT DISTINCT provinceKey, provinceCode FROM admin_units")}
    aliases = {  # short names people write ("hcm", "vungtau"), as vietnamadminunits lists them
        (table, pc): ";".join(json.loads(raw))
        for table in ("admin_units_legacy", "admin_units")
        for pc, raw in db.execute(
            f"SELECT DISTINCT provinceCode, provinceAlias FROM {table} WHERE provinceAlias != ''"
        )
    }

    # --- province crosswalk -------------------------------------------------------------------
    prov_map = {old_pkey[o]: new_pkey[n] for n, olds in conv["DICT_PROVINCE"].items() for o in olds}
    dv_prov_map = {p["level1_id"]: [s["new_id"] for s in p["splits"]] for p in splits}
    for old, new in prov_map.items():
        if dv_prov_map.get(old) != [new]:
            sys.exit(f"province {old}: vietnamadminunits says {new}, dvhcvn says {dv_prov_map.get(old)}")
    if set(prov_map) != set(old_prov) or set(prov_map.values()) != set(new_prov):
        sys.exit("province crosswalk does not cover all 63 old / 34 new provinces")

    # --- ward crosswalk: union of both sources ------------------------------------------------
    # pairs[(old province, old district, old ward)][new ward] = {"vau": default-flag, "dv": extent}
    pairs: dict[tuple[str, str, str], dict[str, dict]] = defaultdict(dict)
    for npk, wards in conv["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for nwk, olds in wards.items():
            for ok in olds:
                pairs[old_key[ok]].setdefault(new_key[(npk, nwk)], {})["vau"] = ""
    for npk, olds in conv["DICT_PROVINCE_WARD_DIVIDED"].items():
        for ok, news in olds.items():
            for n in news:
                flag = "1" if n["isDefaultNewWard"] else "0"
                pairs[old_key[ok]].setdefault(new_key[(npk, n["newWardKey"])], {})["vau"] = flag
    extent = {}
    for prov in merges:
        for w in prov["level2s"]:
            new = DVHCVN_NEW_CODE_FIXES.get(w["level2_id"], w["level2_id"])
            for m in w["merges"]:
                extent[(m["old_id"], new)] = m["type"]
    island = {dc: (pc, dc, "") for dc, (_, _, pc) in old_dist.items()}  # districts without wards
    for prov in splits:
        for w in prov["level3s"]:
            old = w["level3_id"]
            key = (old_ward[old][3], old_ward[old][2], old)
            for s in w["splits"]:
                new = DVHCVN_NEW_CODE_FIXES.get(s["new_id"], s["new_id"])
                pairs[key].setdefault(new, {})["dv"] = extent.get((old, new), "")
    for prov in merges:
        for w in prov["level2s"]:
            for m in w["merges"]:
                if len(m["old_id"]) == 3:  # an island district became a special zone (đặc khu)
                    pairs[island[m["old_id"]]].setdefault(w["level2_id"], {})["dv"] = m["type"]

    xwalk, bad_province, counts = [], [], defaultdict(int)
    for (opc, odc, owc), news in sorted(pairs.items()):
        for nwc, src in sorted(news.items()):
            if nwc not in new_ward:
                sys.exit(f"crosswalk {owc or odc} -> {nwc}: new code not in the 34-province list")
            if new_ward[nwc][2] != prov_map[opc]:
                # provinces merged whole, so such a pair is a name mix-up in a source: drop it
                bad_province.append((owc or odc, nwc, "+".join(src)))
                continue
            sources = "both" if len(src) == 2 else ("vietnamadminunits" if "vau" in src else "dvhcvn")
            counts[sources] += 1
            xwalk.append(
                [owc, odc, opc, nwc, new_ward[nwc][2], src.get("dv", ""), src.get("vau", ""), sources]
            )
    if bad_province:
        print(f"dropped pairs leaving the merged province (old, new, source): {bad_province}")
    missing_old = set(old_ward) - {k[2] for k in pairs}
    missing_new = set(new_ward) - {r[3] for r in xwalk}
    if missing_old or missing_new:
        sys.exit(f"unmapped old wards {sorted(missing_old)[:10]}, new wards {sorted(missing_new)[:10]}")

    # --- write --------------------------------------------------------------------------------
    written = {}
    written["provinces_old.csv"] = write_csv(
        "provinces_old.csv",
        ["code", "name", "type", "valid_to", "new_code", "aliases"],
        [
            [c, n, province_type(n), REFORM, prov_map[c], aliases.get(("admin_units_legacy", c), "")]
            for c, n in sorted(old_prov.items())
        ],
        "63 provinces before the 2025 reform (GSO codes, QĐ 124/2004/QĐ-TTg); valid_to is exclusive.\n"
        + HEADER.format(src=SRC_VAU),
    )
    written["districts_old.csv"] = write_csv(
        "districts_old.csv",
        ["code", "name", "type", "province_code", "valid_to"],
        [[c, n, t, p, REFORM] for c, (n, t, p) in sorted(old_dist.items())],
        "District-level units before 1 Jul 2025 (abolished by Law 72/2025/QH15; no successor codes).\n"
        + HEADER.format(src=SRC_VAU),
    )
    written["wards_old.csv"] = write_csv(
        "wards_old.csv",
        ["code", "name", "type", "district_code", "province_code", "valid_to", "alt_name", "source"],
        [
            [c, n, t, d, p, REFORM if src == "vietnamadminunits" else "", alt, src]
            for c, (n, t, d, p, alt, src) in sorted(old_ward.items())
        ],
        "Commune-level units before 1 Jul 2025. valid_to is exclusive; empty = ended earlier in 2025 on a date\n"
        "the sources do not give (source dvhcvn-20250301: on the GSO list of 2025-03-01, not on that of\n"
        "2025-07-18). alt_name = the other source's spelling when it differs.\n"
        + HEADER.format(src=SRC_BOTH),
    )
    written["provinces_new.csv"] = write_csv(
        "provinces_new.csv",
        ["code", "name", "type", "valid_from", "aliases"],
        [
            [c, n, province_type(n), REFORM, aliases.get(("admin_units", c), "")]
            for c, n in sorted(new_prov.items())
        ],
        "34 provincial units from 1 Jul 2025 (Resolution 202/2025/QH15; codes of QĐ 19/2025/QĐ-TTg).\n"
        + HEADER.format(src=SRC_VAU),
    )
    written["wards_new.csv"] = write_csv(
        "wards_new.csv",
        ["code", "name", "type", "province_code", "valid_from"],
        [[c, n, t, p, REFORM] for c, (n, t, p) in sorted(new_ward.items())],
        "3,321 commune-level units from 1 Jul 2025 (codes of QĐ 19/2025/QĐ-TTg).\n"
        + HEADER.format(src=SRC_VAU),
    )
    written["ward_crosswalk.csv"] = write_csv(
        "ward_crosswalk.csv",
        [
            "old_ward_code",
            "old_district_code",
            "old_province_code",
            "new_ward_code",
            "new_province_code",
            "extent",
            "default",
            "sources",
        ],
        xwalk,
        "Old commune (or ward-less island district) -> new commune, valid from 2025-07-01. Many-to-many.\n"
        "extent: full|partial share of the old unit (dvhcvn); default: 1 = vietnamadminunits' choice for a\n"
        "split unit; sources: which source lists the pair (both|vietnamadminunits|dvhcvn).\n"
        + HEADER.format(src=SRC_BOTH),
    )
    print(f"provinces old {len(old_prov)}, districts old {len(old_dist)}, wards old {len(old_ward)}")
    print(f"provinces new {len(new_prov)}, wards new {len(new_ward)}")
    print(f"crosswalk rows {len(xwalk)} by source {dict(counts)}")
    per_old = defaultdict(int)
    for row in xwalk:
        per_old[row[0] or row[1]] += 1
    multi = sum(1 for n in per_old.values() if n > 1)
    print(f"old units with several new candidates {multi}")
    for name, path in written.items():
        print(f"{name}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()

"""One synthetic person seen at several hospitals, with identifiers no background person can share.

Shared by the benches that time one patient's cross-hospital record (`bench_everything.py`,
`bench_clinician_view.py`): the person's CCCD, BHYT card and hospital record numbers are rewritten so
the record is found by `FOCUS_MARK` and links only to itself. Bench code reads the database directly.
"""

from __future__ import annotations

import time

import orjson
from sqlalchemy import text

from adapters.pipeline import ingest
from adapters.synth import generate
from adapters.synth.envelope import build_envelope, read_files

FOCUS_MARK = "BNFOCUS"


def focus_payloads(visits: int, hospitals: int, seed: int) -> list[bytes]:
    """QĐ130 envelopes of `visits` visits of one person at `hospitals` hospitals."""
    ds = generate(hospitals=hospitals, visits=visits, seed=seed, persons=1, missing_cccd_rate=0.0)
    p = ds.persons[0]
    swaps = [
        (p.cccd.encode(), (p.cccd[:6] + "999999").encode()),
        (p.bhyt.encode(), (p.bhyt[:7] + "99999999").encode()),
    ]
    swaps += [(mrn.encode(), f"{FOCUS_MARK}{fac}".encode()) for fac, mrn in p.mrn.items()]
    out = []
    for v in ds.visits:
        hosos = read_files(v.xml)
        for files in hosos:
            for i, (name, xml) in enumerate(files):
                for old, new in swaps:
                    xml = xml.replace(old, new)
                files[i] = (name, xml)
        out.append(build_envelope(v.facility, hosos))
    return out


def recreate_database(url: str) -> None:
    """Drop and create the PostgreSQL database of `url` (SQLite files are left to the caller)."""
    if not url.startswith("postgresql"):
        return
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def load(store, focus_visits: int, background_visits: int, hospitals: int, seed: int) -> None:
    """Ingest background visits and the focus person's, then link identities."""
    from fhir_server.identity.service import link_all

    t0 = time.perf_counter()
    if background_visits:
        bg = generate(hospitals=8, visits=background_visits, seed=11, persons=max(1, background_visits // 3))
        for i, v in enumerate(bg.visits):
            res = ingest(store, v.xml, source="bench", adapter="qd130")
            if res.status != "processed":
                raise SystemExit(f"background visit {i} not ingested: {res.status}")
    for xml in focus_payloads(focus_visits, hospitals=hospitals, seed=seed):
        res = ingest(store, xml, source="bench", adapter="qd130")
        if res.status != "processed":
            raise SystemExit(f"focus visit not ingested: {res.as_dict()['records'][0]['errors']}")
    identity = link_all(store)
    store.analyze()  # as after any bulk load: plans on never-analysed tables are off by orders of magnitude
    print(f"loaded in {time.perf_counter() - t0:.1f} s; identity: {identity}")


def focus_patient(store) -> str:
    """Id of one of the focus person's Patient records (found by the marked record number)."""
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT content FROM resource WHERE res_type = 'Patient'")).all()
    for (content,) in rows:
        if FOCUS_MARK.encode() in bytes(content):
            return orjson.loads(bytes(content))["id"]
    raise SystemExit("focus patient not found; run without --skip-load")

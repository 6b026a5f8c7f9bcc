"""One synthetic person seen at several hospitals, with identifiers no background person can share.

Shared by the benches that time one patient's cross-hospital record (`bench_everything.py`,
`bench_clinician_view.py`): the person's CCCD, BHYT card and hospital record numbers are rewritten so
the record is found by `FOCUS_MARK` and links only to itself.
"""

from __future__ import annotations

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

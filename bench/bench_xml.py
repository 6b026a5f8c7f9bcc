"""Cost of answering in FHIR XML vs JSON: one Patient and a 50-entry searchset Bundle.

    python bench/bench_xml.py

JSON answers return the stored bytes as they are (the read path) or splice them into a Bundle; XML must
parse, build the fhir.resources model and serialize it with lxml. Ratios are what matter: absolute
figures move with machine load.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_server.api.xml import from_xml, to_xml  # noqa: E402
from tests.fhir_server.vn_data import observation, patient  # noqa: E402

META = {"versionId": "1", "lastUpdated": "2026-12-02T10:00:00+07:00"}


def _time(fn, n: int) -> float:
    """Median of 5 runs of n calls, in microseconds per call."""
    fn()
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    """Print per-call costs and XML/JSON ratios."""
    pat = orjson.dumps({**patient(res_id="p1"), "meta": META})
    entries = [
        {
            "fullUrl": f"http://localhost/fhir/Observation/o{i}",
            "resource": {**observation("Patient/p1", 5.0 + i / 10, res_id=f"o{i}"), "meta": META},
            "search": {"mode": "match"},
        }
        for i in range(50)
    ]
    bundle = orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": 50, "entry": entries})
    json_read = _time(lambda: bytes(pat), 5000)  # what a JSON read does with the stored bytes
    json_roundtrip = _time(lambda: orjson.dumps(orjson.loads(pat)), 2000)
    xml_read = _time(lambda: to_xml(pat), 50)
    json_bundle = _time(lambda: orjson.dumps(orjson.loads(bundle)), 200)
    xml_bundle = _time(lambda: to_xml(bundle), 3)
    xml_body = to_xml(pat)
    xml_in = _time(lambda: from_xml(xml_body), 50)
    json_in = _time(lambda: orjson.loads(pat), 2000)
    print(f"cores={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    print(f"1 Patient     JSON stored bytes {json_read:8.2f} us | JSON parse+dump {json_roundtrip:8.1f} us")
    print(f"              XML  {xml_read:10.0f} us  ({xml_read / json_roundtrip:,.0f}x parse+dump)")
    ratio = xml_bundle / json_bundle
    print(f"50-entry page JSON parse+dump {json_bundle:8.0f} us | XML {xml_bundle:10.0f} us ({ratio:,.0f}x)")
    print(f"XML body in   {xml_in:8.0f} us vs JSON parse {json_in:6.1f} us")


if __name__ == "__main__":
    main()

"""Long fuzz run against a real `lienthong serve` (issue 12): schemathesis over the OpenAPI and the
hypothesis resource fuzzer of the suite (tests/fhir_server/reliability/fuzzing.py), many more cases.
Counts responses per status class and prints every 5xx (method, path, status; no bodies).

    python bench/fuzz_server.py --db postgresql://postgres@127.0.0.1:5432/bench_fuzz \
        --openapi-cases 200 --resource-cases 5000 --seed 12
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fhir_server.reliability.fuzzing import Request, hostile_request  # noqa: E402
from tests.processes import EXE, free_port  # noqa: E402


def _settings(n: int) -> settings:
    return settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))


def main() -> None:
    """Start a server, fuzz it, print the counts and exit 1 if any 5xx was seen."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="sqlite:////tmp/lienthong-fuzz.db")
    ap.add_argument("--openapi-cases", type=int, default=100, help="cases per OpenAPI operation")
    ap.add_argument("--resource-cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    port = free_port()
    env = {**os.environ, "LIENTHONG_DATABASE_URL": args.db, "LIENTHONG_PORT": str(port)}
    server = __import__("subprocess").Popen([EXE, "serve"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        statuses: collections.Counter[int] = collections.Counter()
        errors: list[str] = []
        started = time.perf_counter()
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()

            @seed(args.seed)
            @_settings(args.openapi_cases)
            @given(case=operation.as_strategy())
            def call(case) -> None:
                r = case.call(base_url=base)
                statuses[r.status_code // 100] += 1
                if r.status_code >= 500:
                    errors.append(f"openapi {case.method} {case.formatted_path} -> {r.status_code}")

            call()
        openapi_total = sum(statuses.values())
        with httpx.Client(base_url=f"{base}/fhir/", timeout=120) as http:
            http.put("Patient/bn-fuzz", json={"resourceType": "Patient", "id": "bn-fuzz"})

            @seed(args.seed)
            @_settings(args.resource_cases)
            @given(request=hostile_request())
            def send(request: Request) -> None:
                r = http.request(request.method, request.path, content=request.body, headers=request.headers)
                statuses[r.status_code // 100] += 1
                if r.status_code >= 500:
                    errors.append(f"resource {request.method} /{request.path} -> {r.status_code}")

            send()
        total = sum(statuses.values())
        print(f"cores={os.cpu_count()} db={args.db.split('@')[-1]} seed={args.seed}")
        print(
            f"requests: {total} (openapi {openapi_total}, resources {total - openapi_total}) "
            f"in {time.perf_counter() - started:.0f} s"
        )
        print("by class: " + ", ".join(f"{k}xx={v}" for k, v in sorted(statuses.items())))
        print(f"5xx: {len(errors)}")
        for line in errors[:50]:
            print("  " + line)
        sys.exit(1 if errors else 0)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

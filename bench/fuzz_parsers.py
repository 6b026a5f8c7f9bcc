"""Long fuzz run of the inbound parsers (issue 13): the hypothesis strategies and properties of the suite
(tests/adapters/fuzz/) with many more cases, against the pure QĐ130 / HL7 v2 parse functions and against
real `lienthong serve` (POST /ingest/qd130, /ingest/hl7v2) and `lienthong mllp` processes. Counts the
outcomes, prints every property violation (input steps, no payload bytes) and whether a generated
patient name or CCCD reached the servers' output.

    python bench/fuzz_parsers.py --cases 2000 --pipeline-cases 300 --seed 13 \
        --db postgresql://postgres@127.0.0.1:5432/bench_fuzz_parsers
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.hl7v2.mllp import frame  # noqa: E402
from fhir_server.storage import open_store  # noqa: E402
from tests.adapters.fuzz import drive, properties  # noqa: E402
from tests.adapters.fuzz.hl7v2_inputs import hl7_message, mllp_stream  # noqa: E402
from tests.adapters.fuzz.qd130_inputs import qd130_case, witness  # noqa: E402
from tests.adapters.fuzz.watchdog import within  # noqa: E402
from tests.adapters.hl7v2.samples import ADT_A01  # noqa: E402
from tests.processes import EXE, Proc, child_env, free_port, serve, wait_port  # noqa: E402


def _settings(n: int) -> settings:
    return settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))


class Run:
    """Counts per check and outcome, and the violations seen."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self.people: set[str] = set()

    def check(self, name: str, steps: list[str], call) -> None:
        """Run one case's properties; a violation is recorded, never raised (the run goes on)."""
        try:
            label = call()
            self.counts[f"{name}: {label}"] += 1
        except Exception as exc:  # noqa: BLE001 - every violation is reported at the end
            self.counts[f"{name}: VIOLATION"] += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.failures.append(
                f"{name} {steps}: {type(exc).__name__} at {where.name}:{where.lineno} {exc!s:.300}"
            )


def pure(run: Run, cases: int, seed_value: int) -> None:
    """The pure parse + map functions, `cases` files and `cases` messages."""

    @seed(seed_value)
    @_settings(cases)
    @given(case=qd130_case())
    def qd130(case) -> None:
        run.check("qd130 parse", case.steps, lambda: within(lambda: properties.qd130_parse(case)))
        run.check("qd130 check", case.steps, lambda: within(lambda: properties.qd130_check(case)))

    @seed(seed_value)
    @_settings(cases)
    @given(case=hl7_message())
    def hl7(case) -> None:
        run.check("hl7v2 parse", case.steps, lambda: within(lambda: properties.hl7_parse(case)))

    qd130()
    hl7()


def pipeline(run: Run, cases: int, seed_value: int, db: str, tmp: Path) -> None:
    """The same properties through real processes: HTTP ingest (both adapters) and MLLP."""
    api = serve(db, tmp)
    port = free_port()
    mllp = Proc(
        [EXE, "mllp", "--db", db, "--port", str(port)], child_env(), tmp / "mllp.log", port=port
    ).start()
    store = open_store(db)
    witness_key = witness().ma_lk
    try:
        wait_port(port, mllp)
        base = api.base.removesuffix("/fhir")
        with httpx.Client(base_url=base, timeout=120) as http:

            def ingest(adapter: str, payload: bytes, witness_expected: bool) -> str:
                first = within(lambda: http.post(f"/ingest/{adapter}", content=payload))
                body = drive.check_ingest_answer(store, payload, first)
                if witness_expected:
                    assert drive.outcomes(body).get(witness_key) == "accepted", "witness HOSO not accepted"
                before = drive.distinct_resources(store)
                again = within(lambda: http.post(f"/ingest/{adapter}", content=payload))
                assert drive.outcomes(drive.check_ingest_answer(store, payload, again)) == drive.outcomes(
                    body
                )
                assert drive.distinct_resources(store) == before, "re-send wrote new resources"
                return str(first.status_code)

            @seed(seed_value)
            @_settings(cases)
            @given(case=qd130_case())
            def qd130(case) -> None:
                run.people.update(case.names)
                run.check(
                    "POST /ingest/qd130",
                    case.steps,
                    lambda: ingest("qd130", case.payload, bool(case.witness_key)),
                )

            @seed(seed_value)
            @_settings(cases)
            @given(case=hl7_message(control_prefix="BH"))
            def hl7(case) -> None:
                run.people.update(case.names)
                run.check("POST /ingest/hl7v2", case.steps, lambda: ingest("hl7v2", case.payload, False))

            def exchange(case) -> str:
                frames = drive.frames(b"".join(case.chunks))
                acks = within(lambda: drive.exchange(port, case.chunks, len(frames)))
                codes = [properties.ack_code(a) for a in acks]
                for raw, code in zip(frames, codes):
                    if code in ("AA", "AE"):
                        again = within(lambda raw=raw: drive.exchange(port, [frame(raw)], 1))
                        assert properties.ack_code(again[0]) == code, "re-send answered differently"
                alive = within(lambda: drive.exchange(port, [frame(ADT_A01)], 1))
                assert properties.ack_code(alive[0]) == "AA", "listener no longer answers AA"
                return "/".join(codes) or "no frame"

            @seed(seed_value)
            @_settings(cases)
            @given(case=mllp_stream())
            def mllp_cases(case) -> None:
                for m in case.frames:
                    run.people.update(m.names)
                run.check("MLLP", case.steps, lambda: exchange(case))

            qd130()
            hl7()
            mllp_cases()
    finally:
        store.close()
        api.stop()
        mllp.stop()
    logged = api.output() + mllp.output()
    leaked = drive.leaked(logged, run.people)
    run.counts["server output lines"] = logged.count("\n")
    if leaked:
        run.failures.append(f"patient data in server output: {leaked}")


def main() -> None:
    """Fuzz, print the counts and every violation; exit 1 if any."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1000, help="cases per format for the pure parsers")
    ap.add_argument("--pipeline-cases", type=int, default=100, help="cases per entry point (0: skip)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    run = Run()
    started = time.perf_counter()
    pure(run, args.cases, args.seed)
    pure_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="fuzz-parsers-") as tmp:
        db = args.db or f"sqlite:///{tmp}/fuzz.db"
        if args.pipeline_cases:
            pipeline(run, args.pipeline_cases, args.seed, db, Path(tmp))
    total = time.perf_counter() - started
    print(f"cores={os.cpu_count()} load={os.getloadavg()[0]:.1f} db={db.split('@')[-1]} seed={args.seed}")
    print(f"pure parsers: {pure_s:.0f} s; entry points: {total - pure_s:.0f} s")
    for key, n in sorted(run.counts.items()):
        print(f"  {key}: {n}")
    print(f"violations: {len(run.failures)}")
    for line in run.failures[:50]:
        print("  " + line)
    sys.exit(1 if run.failures else 0)


if __name__ == "__main__":
    main()

"""Summarise `bench/tail_probe.py` records: the distribution of time inside the server and what the
slowest 1 % of requests had in common (issue 20, read tail).

    python bench/tail_report.py /tmp/tail-dir [--skip 200]
"""

from __future__ import annotations

import argparse
import glob
import json
import os


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values, in ms."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


def main() -> None:
    """Print percentiles per component and the suspects' share among the slowest 1 %."""
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--skip", type=int, default=200, help="first records per worker (warm-up) ignored")
    args = ap.parse_args()
    recs: list[dict] = []
    for name in glob.glob(os.path.join(args.dir, "tail.*.jsonl")):
        with open(name) as f:
            rows = [json.loads(line) for line in f]
        recs.extend(rows[args.skip :])
    recs = [r for r in recs if "db" in r]
    if not recs:
        print("no records")
        return
    print(f"{len(recs)} reads")
    keys = ("total", "hop_in", "db", "acquire", "execute", "hop_out", "send", "cpu_loop")
    for key in keys:
        vals = [r.get(key, 0.0) for r in recs]
        marks = "  ".join(
            f"{name} {pct(vals, p):7.3f}" for name, p in (("p50", 50), ("p90", 90), ("p99", 99))
        )
        print(f"{key:9} {marks}  max {pct(vals, 100):8.3f} ms")
    cut = pct([r["total"] for r in recs], 99) / 1000
    slow = [r for r in recs if r["total"] >= cut]
    rest = [r for r in recs if r["total"] < cut]

    def share(rows: list[dict], test) -> str:
        return f"{100 * sum(1 for r in rows if test(r)) / max(1, len(rows)):5.1f} %"

    suspects = {
        "kernel took the loop's core (ivcsw>0)": lambda r: r["ivcsw"] > 0,
        "a gc pass ran": lambda r: bool(r["gc"]),
        "a gen-2 gc pass ran": lambda r: any(g == 2 for g, _ in r["gc"]),
        "hop into thread > 0.5 ms": lambda r: r["hop_in"] > 0.0005,
        "hop back > 0.5 ms": lambda r: r["hop_out"] > 0.0005,
        "db call > 1 ms": lambda r: r["db"] > 0.001,
        "an audit batch was being written": lambda r: r.get("audit", 0.0) > 0,
        "loop cpu > 1 ms": lambda r: r["cpu_loop"] > 0.001,
    }
    print(f"slowest 1 % (>= {cut * 1000:.2f} ms, {len(slow)} requests) vs the rest:")
    for name, test in suspects.items():
        print(f"  {name:40} {share(slow, test)}  vs {share(rest, test)}")
    gc_ms = [d for r in recs for _g, d in r["gc"]]
    if gc_ms:
        print(f"gc passes: {len(gc_ms)}, p50 {pct(gc_ms, 50):.3f} max {pct(gc_ms, 100):.3f} ms")
    mean = {k: sum(r.get(k, 0.0) for r in slow) / len(slow) * 1000 for k in keys}
    print("slowest 1 % mean ms: " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items()))


if __name__ == "__main__":
    main()

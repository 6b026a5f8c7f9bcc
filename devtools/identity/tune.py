"""Estimate m/u probabilities of every comparison level from labelled synthetic data.

Run `python -m devtools.identity.tune [n_records] [seed]`; it prints the estimates next to the
values in mappings/identity/matcher.yaml and precision / recall over a grid of thresholds. The YAML
is edited by hand from this output (estimates are rounded, and kept conservative where the
synthetic noise model is a guess).
"""

from __future__ import annotations

import random
import sys
from collections import Counter, defaultdict

from devtools.identity.evaluate import pair_quality
from devtools.identity.synth import generate
from fhir_server.identity.features import extract
from fhir_server.identity.linker import UnionFind, candidate_pairs
from fhir_server.identity.scorer import FIELDS, MATCH, default_matcher


def estimate(
    n_records: int = 20000, seed: int = 11, random_pairs: int = 200000
) -> dict[str, dict[str, tuple]]:
    """Field -> level -> (m estimate, u estimate) from same-person pairs and random different-person pairs."""
    ds = generate(n_records, seed=seed)
    feats = [extract(r.resource) for r in ds.records]
    person = [r.person_id for r in ds.records]
    matcher = default_matcher()
    by_person: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(person):
        by_person[p].append(i)
    m_counts: dict[str, Counter] = {f: Counter() for f in FIELDS}
    u_counts: dict[str, Counter] = {f: Counter() for f in FIELDS}
    for members in by_person.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                for f, lv in zip(FIELDS, matcher.levels(feats[members[x]], feats[members[y]])):
                    m_counts[f][lv] += 1
    rng = random.Random(seed)
    n = len(feats)
    for _ in range(random_pairs):
        i, j = rng.randrange(n), rng.randrange(n)
        if person[i] == person[j]:
            continue
        for f, lv in zip(FIELDS, matcher.levels(feats[i], feats[j])):
            u_counts[f][lv] += 1
    out: dict[str, dict[str, tuple]] = {}
    for f in FIELDS:
        mt = sum(c for lv, c in m_counts[f].items() if lv is not None) or 1
        ut = sum(c for lv, c in u_counts[f].items() if lv is not None) or 1
        levels = set(m_counts[f]) | set(u_counts[f])
        out[f] = {lv: (m_counts[f][lv] / mt, u_counts[f][lv] / ut) for lv in levels if lv is not None}
    return out


def threshold_grid(n_records: int = 20000, seed: int = 11) -> list[tuple[float, float, float, int]]:
    """(match threshold, precision, recall, auto links) for a range of thresholds on one data set."""
    ds = generate(n_records, seed=seed)
    feats = [extract(r.resource) for r in ds.records]
    truth = {r.resource["id"]: r.person_id for r in ds.records}
    matcher = default_matcher()
    decided = []
    # Score every candidate as if the match threshold were the lowest in the grid.
    matcher.match_threshold, saved = 0.0, matcher.match_threshold
    for i, j in candidate_pairs(feats, matcher):
        d = matcher.decide(feats[i], feats[j])
        decided.append((feats[i].id, feats[j].id, d))
    matcher.match_threshold = saved
    rows = []
    for th in (8, 10, 12, 14, 16, 18, 20, 24):
        uf = UnionFind()
        links = 0
        for a, b, d in decided:
            auto = d.method == "deterministic" and d.outcome == MATCH
            if auto or (d.method == "probabilistic" and d.score >= th and not d.reason):
                uf.union(a, b)
                links += 1
        q = pair_quality(uf.groups(), truth)
        rows.append((float(th), q.precision, q.recall, links))
    return rows


def main() -> None:
    """Print estimates and the threshold grid."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    cfg = default_matcher().config["fields"]
    for f, levels in estimate(n, seed).items():
        print(f"{f}:")
        for lv, (m, u) in sorted(levels.items()):
            have = cfg.get(f, {}).get(lv, {})
            print(f"  {lv:10s} m={m:.4f} u={u:.6f}   yaml m={have.get('m')} u={have.get('u')}")
    print("match-threshold precision recall links")
    for th, p, r, links in threshold_grid(n, seed):
        print(f"{th:6.1f} {p:.4f} {r:.4f} {links}")


if __name__ == "__main__":
    main()

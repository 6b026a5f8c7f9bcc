"""In-memory linking of many Patient records: blocking, pair decisions, link sets (no database)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fhir_server.identity.features import PatientFeatures
from fhir_server.identity.scorer import MATCH, POSSIBLE, Decision, Matcher


def blocking_keys(f: PatientFeatures) -> list[str]:
    """Keys under which a record is compared with others; pairs sharing no key are never scored."""
    keys = ["id:" + k for k in f.person_keys()]
    if f.phone:
        keys.append("ph:" + f.phone)
    if f.year is not None and f.family:
        if f.month is not None:
            # Small blocks (a family name born on one day) that survive any given-name typo.
            keys.append(f"fd:{f.family}|{f.year}-{f.month}-{f.day}")
        if f.last:
            # Middle name dropped or different; birth date year-only, swapped or filler.
            keys.append(f"fl:{f.family}|{f.last}|{f.year}")
    if f.year is not None and f.given:
        # Mistyped or differently spelled family name.
        keys.append(f"gy:{f.given}|{f.year}")
    if f.family and f.given and f.month is not None:
        # Wrong birth year, same day and month. Day/month in either order so a swap plus a typo still meet.
        lo, hi = sorted((f.month, f.day or 0))
        keys.append(f"fg:{f.family}|{f.given}|{lo}-{hi}")
    return keys


def _is_capped(key: str, size: int, matcher: Matcher) -> bool:
    if key.startswith("id:"):
        return False
    if key.startswith("ph:"):
        return size > matcher.max_phone_block
    return size > matcher.max_name_block


def candidate_pairs(features: Sequence[PatientFeatures], matcher: Matcher) -> set[tuple[int, int]]:
    """Index pairs (i < j) that share at least one usable blocking key."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(features):
        for key in blocking_keys(f):
            blocks[key].append(i)
    pairs: set[tuple[int, int]] = set()
    for key, members in blocks.items():
        n = len(members)
        if n < 2 or _is_capped(key, n, matcher):
            continue
        for x in range(n):
            i = members[x]
            for y in range(x + 1, n):
                j = members[y]
                pairs.add((i, j) if i < j else (j, i))
    return pairs


class UnionFind:
    """Disjoint sets over hashable items (link sets = connected components of match links)."""

    def __init__(self) -> None:
        self.parent: dict = {}

    def find(self, x):
        """Representative of x's set (path halving)."""
        parent = self.parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a, b) -> None:
        """Merge the sets of a and b."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def groups(self) -> list[list]:
        """All sets with more than one member."""
        out: dict = defaultdict(list)
        for x in list(self.parent):
            out[self.find(x)].append(x)
        return [g for g in out.values() if len(g) > 1]


@dataclass
class LinkResult:
    """Pair decisions (match and possible only) and the resulting link sets, by patient id."""

    matches: list[tuple[str, str, Decision]] = field(default_factory=list)
    possibles: list[tuple[str, str, Decision]] = field(default_factory=list)
    link_sets: list[list[str]] = field(default_factory=list)
    pairs_scored: int = 0


def link_records(
    features: Sequence[PatientFeatures], matcher: Matcher, forbidden: Iterable[tuple[str, str]] = ()
) -> LinkResult:
    """Block, score and cluster a batch of records; `forbidden` pairs (rejected by a reviewer) never link."""
    blocked = {tuple(sorted(p)) for p in forbidden}
    result = LinkResult()
    uf = UnionFind()
    pairs = candidate_pairs(features, matcher)
    result.pairs_scored = len(pairs)
    for i, j in pairs:
        a, b = features[i], features[j]
        if (a.id, b.id) in blocked or (b.id, a.id) in blocked:
            continue
        decision = matcher.decide(a, b)
        if decision.outcome == MATCH:
            result.matches.append((a.id, b.id, decision))
            uf.union(a.id, b.id)
        elif decision.outcome == POSSIBLE:
            result.possibles.append((a.id, b.id, decision))
    result.link_sets = uf.groups()
    return result

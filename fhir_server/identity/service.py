"""Linking service over the store: link sets as Person resources, review queue, undo.

Every change to links, review rows and the Person resources happens in one unit of work, so a crash
never leaves a Person that disagrees with the link rows. SQL lives in the identity repository
(`storage/sql/identity.py`); this module decides what to link.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import orjson

from fhir_server.identity.features import PatientFeatures, extract
from fhir_server.identity.linker import UnionFind, blocking_keys, link_records
from fhir_server.identity.scorer import MATCH, POSSIBLE, Decision, Matcher, default_matcher
from fhir_server.ids import deterministic_id
from fhir_server.timeutil import now_us

# Person.link.assurance per link method (FHIR identity-assuranceLevel).
ASSURANCE = {"deterministic": "level3", "manual": "level3", "probabilistic": "level2"}
LINK_SET_TAG = {"system": "http://lienthong.vn/fhir/CodeSystem/identity", "code": "link-set"}
ORIGIN = "identity"  # commits made by linking (listeners must not re-queue them)


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _person_resource(person_id: str, members: list[tuple[str, str]]) -> dict:
    """Person resource of a link set: one `link` per member Patient (sources stay untouched)."""
    return {
        "resourceType": "Person",
        "id": person_id,
        "meta": {"tag": [LINK_SET_TAG]},
        "active": True,
        "link": [
            {"target": {"reference": f"Patient/{pid}"}, "assurance": ASSURANCE.get(method, "level2")}
            for pid, method in sorted(members)
        ],
    }


def _write_persons(repo, tx, person_ids: Iterable[str]) -> None:
    """Rewrite (or delete, when fewer than two members remain) the Person of each link set."""
    ids = sorted(set(person_ids))
    members = repo.members_of(tx, ids)
    now = now_us()
    tx.prefetch(("Person", person) for person in ids)  # one query, not one per Person
    for person in ids:
        current = members.get(person, [])
        if len(current) >= 2:
            tx.put(_person_resource(person, current), person, "PUT")
            continue
        if current:
            # A set of one is no link at all: retire the last membership too.
            repo.retire_person(tx, person, now)
        tx.delete("Person", person)


def _apply_links(repo, tx, edges: list[tuple[str, str, str, float | None]]) -> list[str]:
    """Merge link sets along (a, b, method, score) edges; returns the person ids that changed."""
    if not edges:
        return []
    involved = {x for a, b, _, _ in edges for x in (a, b)}
    members = repo.active_members(tx, involved)
    uf = UnionFind()
    by_person: dict[str, list[str]] = defaultdict(list)
    for pid, person in members.items():
        by_person[person].append(pid)
    for group in by_person.values():
        for pid in group[1:]:
            uf.union(group[0], pid)
    first_edge: dict[str, tuple[str, str, float | None]] = {}
    for a, b, method, score in edges:
        uf.union(a, b)
        first_edge.setdefault(a, (b, method, score))
        first_edge.setdefault(b, (a, method, score))
    now = now_us()
    changed: set[str] = set()
    inserts: list[dict] = []
    moves: dict[str, list[str]] = defaultdict(list)  # new person id -> patients whose row moves there
    for group in uf.groups():
        existing = [members[p] for p in group if p in members]
        if existing:
            # Keep the largest existing set's id so links already published stay valid.
            counts: dict[str, int] = defaultdict(int)
            for person in existing:
                counts[person] += 1
            person_id = min(counts, key=lambda p: (-counts[p], p))
        else:
            person_id = deterministic_id("Person", "link-set", min(group))
        changed.add(person_id)
        for pid in group:
            old = members.get(pid)
            if old == person_id:
                continue
            if old is not None:
                moves[person_id].append(pid)
                changed.add(old)
            else:
                other, method, score = first_edge.get(pid, (None, "probabilistic", None))
                inserts.append(
                    {
                        "person_id": person_id,
                        "patient_id": pid,
                        "method": method,
                        "score": score,
                        "status": "active",
                        "matched_to": other,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
    for person_id, pids in moves.items():
        repo.move_members(tx, person_id, pids, now)
    repo.add_members(tx, inserts)
    _write_persons(repo, tx, changed)
    return sorted(changed)


def _queue_reviews(repo, tx, possibles: list[tuple[str, str, Decision]]) -> int:
    """Add uncertain pairs to the review queue unless that pair was already queued or decided."""
    if not possibles:
        return 0
    pairs = {_pair(a, b): d for a, b, d in possibles}
    have = repo.queued_pairs(tx, sorted({a for a, _ in pairs}))
    now = now_us()
    rows = [
        {
            "patient_a": a,
            "patient_b": b,
            "score": round(d.score, 3),
            "features": orjson.dumps(d.features()).decode(),
            "reason": d.reason or None,
            "status": "pending",
            "created_at": now,
        }
        for (a, b), d in pairs.items()
        if (a, b) not in have
    ]
    repo.add_reviews(tx, rows)
    return len(rows)


def _capper(matcher: Matcher):
    """Whether a blocking key is too common to compare its holders (name and phone keys only)."""

    def capped(key: str, size: int) -> bool:
        if key.startswith("id:"):
            return False
        return size > (matcher.max_phone_block if key.startswith("ph:") else matcher.max_name_block)

    return capped


# -- public API ------------------------------------------------------------------------------------
def link_patient(store, patient_id: str, matcher: Matcher | None = None) -> dict:
    """Link one (newly ingested) Patient with the records it matches; returns a summary."""
    return link_patients(store, [patient_id], matcher)[0]


def link_patients(store, patient_ids: Iterable[str], matcher: Matcher | None = None) -> list[dict]:
    """Link several newly ingested Patients in one unit of work, with a fixed number of queries for
    the whole batch (an ingest batch or an MLLP group commit), not a dozen per Patient. Their pending
    entries (if any) are cleared in the same transaction."""
    matcher = matcher or default_matcher()
    repo = store.identity
    ids = list(dict.fromkeys(patient_ids))
    with store.begin(origin=ORIGIN) as tx:
        found = repo.load_patients(tx, ids)
        feats = {pid: extract(body) for pid, body in found.items()}
        keys = {pid: sorted(set(blocking_keys(f))) for pid, f in feats.items()}
        repo.replace_keys(tx, ids, [(k, pid) for pid, ks in keys.items() for k in ks])
        candidates = repo.candidates(tx, keys, _capper(matcher))
        wanted = {o for cs in candidates.values() for o in cs} - set(feats)
        feats.update({pid: extract(body) for pid, body in repo.load_patients(tx, wanted).items()})
        rejected = repo.rejected_pairs(tx) if ids else set()
        edges, possibles, summaries, decided = [], [], [], set()
        for pid in ids:
            linked: list[str] = []
            queued = 0
            for other in candidates.get(pid, ()):
                pair = _pair(pid, other)
                if pair in rejected or pair in decided or other not in feats:
                    continue
                decided.add(pair)  # two records of one batch meet once, not twice
                d = matcher.decide(feats[pid], feats[other])
                if d.outcome == MATCH:
                    edges.append((pid, other, d.method, round(d.score, 3)))
                    linked.append(other)
                elif d.outcome == POSSIBLE:
                    possibles.append((pid, other, d))
                    queued += 1
            summaries.append({"patient": pid, "linked": linked, "queued": queued})
        _apply_links(repo, tx, edges)
        _queue_reviews(repo, tx, possibles)
        repo.done_pending(tx, ids)
    return summaries


def candidates_for(store, patient: dict, matcher: Matcher) -> list[str]:
    """Stored Patients sharing a usable blocking key with `patient` (the `$match` candidate set)."""
    keys = sorted(set(blocking_keys(extract(patient))))
    return store.identity.candidates(None, {patient.get("id") or "": keys}, _capper(matcher))[
        patient.get("id") or ""
    ]


def link_all(store, matcher: Matcher | None = None) -> dict:
    """Re-link every Patient in the store (blocking keeps it near-linear); returns counts."""
    matcher = matcher or default_matcher()
    repo = store.identity
    with store.begin(origin=ORIGIN) as tx:
        feats: list[PatientFeatures] = [extract(p) for p in repo.iter_all_patients(tx)]
        rejected = repo.rejected_pairs(tx)
        result = link_records(feats, matcher, forbidden=rejected)
        repo.reset_keys(tx, [(k, f.id) for f in feats for k in set(blocking_keys(f))])
        edges = [(a, b, d.method, round(d.score, 3)) for a, b, d in result.matches]
        changed = _apply_links(repo, tx, edges)
        queued = _queue_reviews(repo, tx, result.possibles)
        repo.done_pending(tx, [f.id for f in feats])
    return {
        "patients": len(feats),
        "pairs_scored": result.pairs_scored,
        "links": len(edges),
        "link_sets_changed": len(changed),
        "queued": queued,
    }


def linked_patient_ids(store, patient_id: str) -> list[str]:
    """All Patient ids of the person `patient_id` belongs to (itself included), sorted."""
    return store.identity.linked_ids(patient_id)


def person_of(store, patient_id: str) -> str | None:
    """Id of the Person (link set) holding this Patient, if it is linked."""
    return store.identity.person_of(patient_id)


def review_list(store, status: str = "pending", limit: int = 100) -> list[dict]:
    """Review-queue rows with the given status, oldest first."""
    return store.identity.review_list(status, limit)


def review_get(store, review_id: int) -> dict | None:
    """One review-queue row."""
    return store.identity.review_get(review_id)


def review_accept(store, review_id: int, by: str | None = None) -> dict:
    """Accept a queued pair: link the two Patients (method manual)."""
    repo = store.identity
    with store.begin(origin=ORIGIN) as tx:
        row = repo.decide(tx, review_id, "accepted", by)
        _apply_links(repo, tx, [(row["patient_a"], row["patient_b"], "manual", row["score"])])
    return review_get(store, review_id) or {}


def review_reject(store, review_id: int, by: str | None = None) -> dict:
    """Reject a queued pair: the two Patients will not be linked automatically again."""
    with store.begin(origin=ORIGIN) as tx:
        store.identity.decide(tx, review_id, "rejected", by)
    return review_get(store, review_id) or {}


def undo_link(store, patient_id: str, by: str | None = None) -> dict:
    """Take a Patient out of its link set and remember not to link it to those records again."""
    repo = store.identity
    with store.begin(origin=ORIGIN) as tx:
        person, others = repo.unlink(tx, patient_id, by)
        if person is not None:
            _write_persons(repo, tx, [person])
    return {"patient": patient_id, "person": person, "unlinked_from": sorted(others)}

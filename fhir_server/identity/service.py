"""Linking service over the store: link sets as Person resources, review queue, undo.

Every change to links, review rows and the Person resources happens in one store transaction, so a
crash never leaves a Person that disagrees with the identity_link table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

import orjson
from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from adapters.ids import deterministic_id
from fhir_server.identity.features import PatientFeatures, extract
from fhir_server.identity.linker import UnionFind, blocking_keys, link_records
from fhir_server.identity.schema import identity_key, identity_link, identity_review
from fhir_server.identity.scorer import MATCH, POSSIBLE, Decision, Matcher, default_matcher
from fhir_server.storage.db import among
from fhir_server.storage.schema import resource
from fhir_server.timeutil import now_us

# Person.link.assurance per link method (FHIR identity-assuranceLevel).
ASSURANCE = {"deterministic": "level3", "manual": "level3", "probabilistic": "level2"}
LINK_SET_TAG = {"system": "http://lienthong.vn/fhir/CodeSystem/identity", "code": "link-set"}
_CHUNK = 500


def _chunks(items: list, size: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


# -- reading Patients ------------------------------------------------------------------------------
def _load_patients(conn: Connection, ids: Iterable[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    r = resource.c
    for chunk in _chunks(sorted(set(ids))):
        rows = conn.execute(
            select(r.res_id, r.content).where(
                and_(r.res_type == "Patient", among(conn, r.res_id, chunk), r.deleted.is_(False))
            )
        )
        for res_id, content in rows:
            if content:
                out[res_id] = orjson.loads(content)
    return out


def _iter_all_patients(conn: Connection) -> Iterator[dict]:
    r = resource.c
    stmt = select(r.content).where(and_(r.res_type == "Patient", r.deleted.is_(False)))
    for (content,) in conn.execute(stmt.execution_options(yield_per=2000)):
        if content:
            yield orjson.loads(content)


def _rejected_pairs(conn: Connection, patient_id: str | None = None) -> set[tuple[str, str]]:
    rv = identity_review.c
    cond = rv.status == "rejected"
    if patient_id is not None:
        cond = and_(cond, or_(rv.patient_a == patient_id, rv.patient_b == patient_id))
    return {(a, b) for a, b in conn.execute(select(rv.patient_a, rv.patient_b).where(cond))}


# -- link sets -------------------------------------------------------------------------------------
def _active_members(conn: Connection, patient_ids: Iterable[str]) -> dict[str, str]:
    """patient id -> person id for active memberships of these patients and of everyone in their sets."""
    lk = identity_link.c
    persons: set[str] = set()
    for chunk in _chunks(sorted(set(patient_ids))):
        persons.update(
            p
            for (p,) in conn.execute(
                select(lk.person_id).where(and_(among(conn, lk.patient_id, chunk), lk.status == "active"))
            )
        )
    members: dict[str, str] = {}
    for chunk in _chunks(sorted(persons)):
        for pid, person in conn.execute(
            select(lk.patient_id, lk.person_id).where(
                and_(among(conn, lk.person_id, chunk), lk.status == "active")
            )
        ):
            members[pid] = person
    return members


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


def _write_persons(tx, person_ids: Iterable[str]) -> None:
    """Rewrite (or delete, when fewer than two members remain) the Person of each link set."""
    lk = identity_link.c
    ids = sorted(set(person_ids))
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for chunk in _chunks(ids):
        for person, pid, method in tx.conn.execute(
            select(lk.person_id, lk.patient_id, lk.method).where(
                and_(among(tx.conn, lk.person_id, chunk), lk.status == "active")
            )
        ):
            members[person].append((pid, method))
    now = now_us()
    tx.prefetch(("Person", person) for person in ids)  # one query, not one per Person
    for person in ids:
        current = members.get(person, [])
        if len(current) >= 2:
            tx.put(_person_resource(person, current), person, "PUT")
            continue
        if current:
            # A set of one is no link at all: retire the last membership too.
            tx.conn.execute(
                update(identity_link)
                .where(and_(lk.person_id == person, lk.status == "active"))
                .values(status="undone", updated_at=now)
            )
        tx.delete("Person", person)


def _apply_links(tx, edges: list[tuple[str, str, str, float | None]]) -> list[str]:
    """Merge link sets along (a, b, method, score) edges; returns the person ids that changed."""
    if not edges:
        return []
    conn = tx.conn
    lk = identity_link.c
    involved = {x for a, b, _, _ in edges for x in (a, b)}
    members = _active_members(conn, involved)
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
            counts = defaultdict(int)
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
        for chunk in _chunks(pids):
            conn.execute(
                update(identity_link)
                .where(and_(among(conn, lk.patient_id, chunk), lk.status == "active"))
                .values(person_id=person_id, updated_at=now)
            )
    for chunk in _chunks(inserts, 1000):
        conn.execute(insert(identity_link), chunk)
    _write_persons(tx, changed)
    return sorted(changed)


def _queue_reviews(conn: Connection, possibles: list[tuple[str, str, Decision]]) -> int:
    """Add uncertain pairs to the review queue unless that pair was already queued or decided."""
    if not possibles:
        return 0
    rv = identity_review.c
    pairs = {_pair(a, b): d for a, b, d in possibles}
    have: set[tuple[str, str]] = set()
    firsts = sorted({a for a, _ in pairs})
    for chunk in _chunks(firsts):
        have.update(conn.execute(select(rv.patient_a, rv.patient_b).where(rv.patient_a.in_(chunk))).all())
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
    for chunk in _chunks(rows, 1000):
        conn.execute(insert(identity_review), chunk)
    return len(rows)


# -- public API ------------------------------------------------------------------------------------
def link_patient(store, patient_id: str, matcher: Matcher | None = None) -> dict:
    """Link one (newly ingested) Patient with the records it matches; returns a summary."""
    return link_patients(store, [patient_id], matcher)[0]


def link_patients(store, patient_ids: Iterable[str], matcher: Matcher | None = None) -> list[dict]:
    """Link several newly ingested Patients in one transaction, with a fixed number of queries for the
    whole batch (an ingest batch or an MLLP group commit), not a dozen per Patient."""
    matcher = matcher or default_matcher()
    ids = list(dict.fromkeys(patient_ids))
    with store.begin() as tx:
        conn = tx.conn
        found = _load_patients(conn, ids)
        for chunk in _chunks(ids):
            conn.execute(delete(identity_key).where(among(conn, identity_key.c.patient_id, chunk)))
        feats = {pid: extract(body) for pid, body in found.items()}
        keys = {pid: sorted(set(blocking_keys(f))) for pid, f in feats.items()}
        _add_keys(conn, [(k, pid) for pid, ks in keys.items() for k in ks])
        candidates = _candidates_many(conn, keys, matcher)
        wanted = {o for cs in candidates.values() for o in cs} - set(feats)
        feats.update({pid: extract(body) for pid, body in _load_patients(conn, wanted).items()})
        rejected = _rejected_pairs(conn) if ids else set()
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
        _apply_links(tx, edges)
        _queue_reviews(conn, possibles)
    return summaries


def _candidates(conn: Connection, keys: list[str], patient_id: str, matcher: Matcher) -> list[str]:
    """Other Patients sharing a usable blocking key with one Patient (used by $match too)."""
    return _candidates_many(conn, {patient_id: keys}, matcher)[patient_id]


def _candidates_many(conn: Connection, keys: dict[str, list[str]], matcher: Matcher) -> dict[str, list[str]]:
    """Other Patients sharing a usable blocking key, per Patient (one size query, one lookup)."""
    ik = identity_key.c
    all_keys = sorted({k for ks in keys.values() for k in ks})
    sizes: dict[str, int] = {}
    for chunk in _chunks(all_keys):
        sizes.update(
            conn.execute(
                select(ik.block_key, func.count())
                .where(among(conn, ik.block_key, chunk))
                .group_by(ik.block_key)
            ).all()
        )
    usable = sorted(k for k in all_keys if not _capped(k, sizes.get(k, 0), matcher))
    holders: dict[str, list[str]] = defaultdict(list)
    for chunk in _chunks(usable):
        for key, pid in conn.execute(
            select(ik.block_key, ik.patient_id).where(among(conn, ik.block_key, chunk))
        ):
            holders[key].append(pid)
    usable_set = set(usable)
    return {
        pid: sorted({o for k in ks if k in usable_set for o in holders.get(k, ()) if o != pid})
        for pid, ks in keys.items()
    }


def _add_keys(conn: Connection, pairs: list[tuple[str, str]]) -> None:
    """Insert (block key, patient id) rows, skipping those already there (see _insert_keys)."""
    if not pairs:
        return
    if conn.dialect.name == "postgresql":
        # One statement with two arrays instead of an executemany of one INSERT per row.
        conn.execute(_ADD_KEYS_PG, {"keys": [k for k, _ in pairs], "pids": [p for _, p in pairs]})
        return
    for chunk in _chunks(pairs, 1000):
        conn.execute(_insert_keys(conn), [{"block_key": k, "patient_id": p} for k, p in chunk])


_ADD_KEYS_PG = text(
    "INSERT INTO identity_key (block_key, patient_id) "
    "SELECT * FROM unnest(CAST(:keys AS varchar[]), CAST(:pids AS varchar[])) ON CONFLICT DO NOTHING"
)


def _insert_keys(conn: Connection):
    """INSERT into identity_key that ignores rows already there: two ingest workers may link the same
    re-sent Patient at once, and its blocking keys are the same either way."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(identity_key).on_conflict_do_nothing()
    return insert(identity_key).prefix_with("OR IGNORE")


def _capped(key: str, size: int, matcher: Matcher) -> bool:
    if key.startswith("id:"):
        return False
    return size > (matcher.max_phone_block if key.startswith("ph:") else matcher.max_name_block)


def link_all(store, matcher: Matcher | None = None) -> dict:
    """Re-link every Patient in the store (blocking keeps it near-linear); returns counts."""
    matcher = matcher or default_matcher()
    with store.begin() as tx:
        conn = tx.conn
        feats: list[PatientFeatures] = [extract(p) for p in _iter_all_patients(conn)]
        rejected = _rejected_pairs(conn)
        result = link_records(feats, matcher, forbidden=rejected)
        conn.execute(delete(identity_key))
        key_rows = [{"block_key": k, "patient_id": f.id} for f in feats for k in set(blocking_keys(f))]
        for chunk in _chunks(key_rows, 5000):
            conn.execute(_insert_keys(conn), chunk)
        edges = [(a, b, d.method, round(d.score, 3)) for a, b, d in result.matches]
        changed = _apply_links(tx, edges)
        queued = _queue_reviews(conn, result.possibles)
    return {
        "patients": len(feats),
        "pairs_scored": result.pairs_scored,
        "links": len(edges),
        "link_sets_changed": len(changed),
        "queued": queued,
    }


def linked_patient_ids(store, patient_id: str) -> list[str]:
    """All Patient ids of the person `patient_id` belongs to (itself included), sorted."""
    lk = identity_link.c
    with store.engine.connect() as conn:
        person = conn.execute(
            select(lk.person_id).where(and_(lk.patient_id == patient_id, lk.status == "active"))
        ).scalar()
        if person is None:
            return [patient_id]
        ids = {
            pid
            for (pid,) in conn.execute(
                select(lk.patient_id).where(and_(lk.person_id == person, lk.status == "active"))
            )
        }
    ids.add(patient_id)
    return sorted(ids)


def person_of(store, patient_id: str) -> str | None:
    """Id of the Person (link set) holding this Patient, if it is linked."""
    lk = identity_link.c
    with store.engine.connect() as conn:
        return conn.execute(
            select(lk.person_id).where(and_(lk.patient_id == patient_id, lk.status == "active"))
        ).scalar()


def review_list(store, status: str = "pending", limit: int = 100) -> list[dict]:
    """Review-queue rows with the given status, oldest first."""
    rv = identity_review.c
    with store.engine.connect() as conn:
        rows = (
            conn.execute(
                select(identity_review).where(rv.status == status).order_by(rv.review_id).limit(limit)
            )
            .mappings()
            .all()
        )
    return [_review_dict(r) for r in rows]


def _review_dict(row) -> dict:
    out = {str(k): row[k] for k in row.keys()}
    out["features"] = orjson.loads(out["features"]) if out.get("features") else {}
    return out


def review_get(store, review_id: int) -> dict | None:
    """One review-queue row."""
    with store.engine.connect() as conn:
        row = (
            conn.execute(select(identity_review).where(identity_review.c.review_id == review_id))
            .mappings()
            .first()
        )
    return _review_dict(row) if row else None


def review_accept(store, review_id: int, by: str | None = None) -> dict:
    """Accept a queued pair: link the two Patients (method manual)."""
    with store.begin() as tx:
        row = _decide(tx.conn, review_id, "accepted", by)
        _apply_links(tx, [(row["patient_a"], row["patient_b"], "manual", row["score"])])
    return review_get(store, review_id) or {}


def review_reject(store, review_id: int, by: str | None = None) -> dict:
    """Reject a queued pair: the two Patients will not be linked automatically again."""
    with store.begin() as tx:
        _decide(tx.conn, review_id, "rejected", by)
    return review_get(store, review_id) or {}


def _decide(conn: Connection, review_id: int, status: str, by: str | None) -> dict:
    rv = identity_review.c
    row = conn.execute(select(identity_review).where(rv.review_id == review_id)).mappings().first()
    if row is None:
        raise KeyError(f"no review item {review_id}")
    if row["status"] != "pending":
        raise ValueError(f"review item {review_id} is already {row['status']}")
    conn.execute(
        update(identity_review)
        .where(rv.review_id == review_id)
        .values(status=status, decided_at=now_us(), decided_by=by)
    )
    return {str(k): row[k] for k in row.keys()}


def undo_link(store, patient_id: str, by: str | None = None) -> dict:
    """Take a Patient out of its link set and remember not to link it to those records again."""
    lk, rv = identity_link.c, identity_review.c
    with store.begin() as tx:
        conn = tx.conn
        person = conn.execute(
            select(lk.person_id).where(and_(lk.patient_id == patient_id, lk.status == "active"))
        ).scalar()
        if person is None:
            return {"patient": patient_id, "person": None, "unlinked_from": []}
        others = [
            p
            for (p,) in conn.execute(
                select(lk.patient_id).where(
                    and_(lk.person_id == person, lk.status == "active", lk.patient_id != patient_id)
                )
            )
        ]
        now = now_us()
        conn.execute(
            update(identity_link)
            .where(and_(lk.patient_id == patient_id, lk.status == "active"))
            .values(status="undone", updated_at=now)
        )
        for other in others:
            a, b = _pair(patient_id, other)
            done = conn.execute(
                update(identity_review)
                .where(and_(rv.patient_a == a, rv.patient_b == b))
                .values(status="rejected", reason="unlinked", decided_at=now, decided_by=by)
            )
            if done.rowcount == 0:
                conn.execute(
                    insert(identity_review).values(
                        patient_a=a,
                        patient_b=b,
                        status="rejected",
                        reason="unlinked",
                        created_at=now,
                        decided_at=now,
                        decided_by=by,
                    )
                )
        _write_persons(tx, [person])
    return {"patient": patient_id, "person": person, "unlinked_from": sorted(others)}

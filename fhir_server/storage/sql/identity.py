"""Tables and SQL of the identity service (cross-hospital patient linking).

identity_link    one row per (link set, patient) membership; the link set is a Lienthong-owned Person.
identity_review  pairs the matcher was unsure about, and reviewer / unlink decisions ("do not link").
identity_key     blocking keys per Patient, so linking one new record finds candidates with an index.
identity_pending Patients written but not yet linked: queued in the writing transaction, so a crash
                 between the data commit and the linking loses no work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable

from fhir_server.storage.sql.db import SqlUnit, among
from fhir_server.storage.sql.schema import RID, metadata, resource
from fhir_server.timeutil import now_us

_CHUNK = 500

identity_link = Table(
    "identity_link",
    metadata,
    Column("link_id", RID, primary_key=True, autoincrement=True),
    Column("person_id", String(64), nullable=False),  # id of the Person resource (link set)
    Column("patient_id", String(64), nullable=False),
    Column("method", String(16), nullable=False),  # deterministic | probabilistic | manual
    Column("score", Float, nullable=True),
    Column("status", String(8), nullable=False),  # active | undone
    Column("matched_to", String(64), nullable=True),  # the patient whose comparison brought this one in
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_identity_link_patient", identity_link.c.patient_id, identity_link.c.status)
Index("ix_identity_link_person", identity_link.c.person_id, identity_link.c.status)

identity_review = Table(
    "identity_review",
    metadata,
    Column("review_id", RID, primary_key=True, autoincrement=True),
    Column("patient_a", String(64), nullable=False),  # patient_a < patient_b
    Column("patient_b", String(64), nullable=False),
    Column("score", Float, nullable=True),
    Column("features", Text, nullable=True),  # JSON: field -> agreement level
    Column("reason", Text, nullable=True),
    Column("status", String(10), nullable=False),  # pending | accepted | rejected
    Column("created_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    Column("decided_by", String(128), nullable=True),
    UniqueConstraint("patient_a", "patient_b", name="uq_identity_review_pair"),
)
Index("ix_identity_review_status", identity_review.c.status, identity_review.c.review_id)

identity_key = Table(
    "identity_key",
    metadata,
    Column("block_key", String(255), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
)
Index("ix_identity_key_patient", identity_key.c.patient_id)
identity_pending = Table(
    "identity_pending",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("queued_at", BigInteger, nullable=False),
)


def _chunks(items: list, size: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class IdentityRepository:
    """SQL of the identity service: link rows, review queue, blocking keys and pending work.

    Methods taking a `tx` run inside the caller's unit of work, so link rows and the Person resources
    they describe commit together; the others read committed state on their own connection."""

    def __init__(self, engine: Engine, reader: Engine | None = None) -> None:
        self.engine = engine
        # Single-statement lookups asked on every $everything and clinician view: autocommit on
        # PostgreSQL (one round trip, no BEGIN/ROLLBACK; issue 20), the engine itself elsewhere.
        self.reader = reader or engine

    # -- Patients ---------------------------------------------------------------------------------
    def load_patients(self, tx: SqlUnit, ids: Iterable[str]) -> dict[str, dict]:
        """Current, non-deleted Patients by id (parsed)."""
        return _load_patients(tx.conn, ids)

    def load_patients_committed(self, ids: Iterable[str]) -> dict[str, dict]:
        """Like load_patients, outside any unit of work."""
        with self.engine.connect() as conn:
            return _load_patients(conn, ids)

    def iter_all_patients(self, tx: SqlUnit) -> Iterator[dict]:
        """Every current Patient, streamed."""
        r = resource.c
        stmt = select(r.content).where(and_(r.res_type == "Patient", r.deleted.is_(False)))
        for (content,) in tx.conn.execute(stmt.execution_options(yield_per=2000)):
            if content:
                yield orjson.loads(content)

    # -- link sets --------------------------------------------------------------------------------
    def rejected_pairs(self, tx: SqlUnit, patient_id: str | None = None) -> set[tuple[str, str]]:
        """Pairs a reviewer (or an unlink) said must not be linked."""
        rv = identity_review.c
        cond = rv.status == "rejected"
        if patient_id is not None:
            cond = and_(cond, or_(rv.patient_a == patient_id, rv.patient_b == patient_id))
        return {(a, b) for a, b in tx.conn.execute(select(rv.patient_a, rv.patient_b).where(cond))}

    def active_members(self, tx: SqlUnit, patient_ids: Iterable[str]) -> dict[str, str]:
        """patient id -> person id for active memberships of these patients and everyone in their sets."""
        conn = tx.conn
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

    def members_of(self, tx: SqlUnit, person_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
        """person id -> [(patient id, link method)] of active memberships."""
        lk = identity_link.c
        members: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for chunk in _chunks(person_ids):
            for person, pid, method in tx.conn.execute(
                select(lk.person_id, lk.patient_id, lk.method).where(
                    and_(among(tx.conn, lk.person_id, chunk), lk.status == "active")
                )
            ):
                members[person].append((pid, method))
        return members

    def retire_person(self, tx: SqlUnit, person_id: str, now: int) -> None:
        """Mark every active membership of a link set undone."""
        lk = identity_link.c
        tx.conn.execute(
            update(identity_link)
            .where(and_(lk.person_id == person_id, lk.status == "active"))
            .values(status="undone", updated_at=now)
        )

    def move_members(self, tx: SqlUnit, person_id: str, patient_ids: list[str], now: int) -> None:
        """Point these patients' active memberships at another link set."""
        lk = identity_link.c
        for chunk in _chunks(patient_ids):
            tx.conn.execute(
                update(identity_link)
                .where(and_(among(tx.conn, lk.patient_id, chunk), lk.status == "active"))
                .values(person_id=person_id, updated_at=now)
            )

    def add_members(self, tx: SqlUnit, rows: list[dict]) -> None:
        """Insert new memberships (dicts with the identity_link columns)."""
        for chunk in _chunks(rows, 1000):
            tx.conn.execute(insert(identity_link), chunk)

    def person_of(self, patient_id: str) -> str | None:
        """Id of the Person (link set) holding this Patient, if it is linked."""
        lk = identity_link.c
        with self.reader.connect() as conn:
            return conn.execute(
                select(lk.person_id).where(and_(lk.patient_id == patient_id, lk.status == "active"))
            ).scalar()

    def linked_ids(self, patient_id: str) -> list[str]:
        """All Patient ids of the person `patient_id` belongs to (itself included), sorted."""
        lk = identity_link.c
        mine = identity_link.alias("mine")
        # One round trip (the clinician page asks on every view): the person, then its members.
        person = (
            select(mine.c.person_id)
            .where(and_(mine.c.patient_id == patient_id, mine.c.status == "active"))
            .limit(1)
            .scalar_subquery()
        )
        with self.reader.connect() as conn:
            ids = {
                pid
                for (pid,) in conn.execute(
                    select(lk.patient_id).where(and_(lk.person_id == person, lk.status == "active"))
                )
            }
        ids.add(patient_id)
        return sorted(ids)

    def unlink(self, tx: SqlUnit, patient_id: str, by: str | None) -> tuple[str | None, list[str]]:
        """Take a Patient out of its set and record "do not link" for each former partner."""
        lk, rv = identity_link.c, identity_review.c
        conn = tx.conn
        person = conn.execute(
            select(lk.person_id).where(and_(lk.patient_id == patient_id, lk.status == "active"))
        ).scalar()
        if person is None:
            return None, []
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
            a, b = (patient_id, other) if patient_id < other else (other, patient_id)
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
        return person, others

    # -- review queue -----------------------------------------------------------------------------
    def queued_pairs(self, tx: SqlUnit, firsts: list[str]) -> set[tuple[str, str]]:
        """Pairs already in the queue (any status) whose first patient is one of these."""
        rv = identity_review.c
        have: set[tuple[str, str]] = set()
        for chunk in _chunks(firsts):
            have.update(
                (a, b)
                for a, b in tx.conn.execute(select(rv.patient_a, rv.patient_b).where(rv.patient_a.in_(chunk)))
            )
        return have

    def add_reviews(self, tx: SqlUnit, rows: list[dict]) -> None:
        """Insert pending review rows."""
        for chunk in _chunks(rows, 1000):
            tx.conn.execute(insert(identity_review), chunk)

    def review_list(self, status: str, limit: int) -> list[dict]:
        """Review-queue rows with the given status, oldest first."""
        rv = identity_review.c
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(identity_review).where(rv.status == status).order_by(rv.review_id).limit(limit)
                )
                .mappings()
                .all()
            )
        return [_review_dict(r) for r in rows]

    def review_get(self, review_id: int) -> dict | None:
        """One review-queue row."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(identity_review).where(identity_review.c.review_id == review_id))
                .mappings()
                .first()
            )
        return _review_dict(row) if row else None

    def decide(self, tx: SqlUnit, review_id: int, status: str, by: str | None) -> dict:
        """Set a pending review row's decision; KeyError if unknown, ValueError if already decided."""
        rv = identity_review.c
        row = tx.conn.execute(select(identity_review).where(rv.review_id == review_id)).mappings().first()
        if row is None:
            raise KeyError(f"no review item {review_id}")
        if row["status"] != "pending":
            raise ValueError(f"review item {review_id} is already {row['status']}")
        tx.conn.execute(
            update(identity_review)
            .where(rv.review_id == review_id)
            .values(status=status, decided_at=now_us(), decided_by=by)
        )
        return {str(k): row[k] for k in row.keys()}

    # -- blocking keys ----------------------------------------------------------------------------
    def replace_keys(self, tx: SqlUnit, patient_ids: list[str], pairs: list[tuple[str, str]]) -> None:
        """Drop these patients' blocking keys and insert the new (key, patient) pairs."""
        conn = tx.conn
        for chunk in _chunks(patient_ids):
            conn.execute(delete(identity_key).where(among(conn, identity_key.c.patient_id, chunk)))
        _add_keys(conn, pairs)

    def reset_keys(self, tx: SqlUnit, pairs: list[tuple[str, str]]) -> None:
        """Replace every blocking key (a full re-link)."""
        tx.conn.execute(delete(identity_key))
        rows = [{"block_key": k, "patient_id": p} for k, p in pairs]
        for chunk in _chunks(rows, 5000):
            tx.conn.execute(_insert_keys(tx.conn), chunk)

    def candidates(
        self, tx: SqlUnit | None, keys: dict[str, list[str]], capped: Callable[[str, int], bool]
    ) -> dict[str, list[str]]:
        """Other Patients sharing a usable blocking key, per Patient (one size query, one lookup);
        `capped(key, size)` says a key is too common to block on."""
        if tx is not None:
            return _candidates(tx.conn, keys, capped)
        with self.engine.connect() as conn:
            return _candidates(conn, keys, capped)

    # -- pending work (durable across crashes) ----------------------------------------------------
    def queue_pending(self, tx: SqlUnit, patient_ids: list[str]) -> None:
        """Remember, in the writing transaction, Patients that still need linking."""
        if not patient_ids:
            return
        now = now_us()
        rows = [{"patient_id": p, "queued_at": now} for p in sorted(set(patient_ids))]
        stmt: Executable
        if tx.conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(identity_pending).on_conflict_do_nothing()
        else:
            stmt = insert(identity_pending).prefix_with("OR IGNORE")
        for chunk in _chunks(rows, 1000):
            tx.conn.execute(stmt, chunk)

    def pending(self, limit: int = 1000) -> list[str]:
        """Patients waiting to be linked, oldest first."""
        p = identity_pending.c
        with self.engine.connect() as conn:
            return [r for (r,) in conn.execute(select(p.patient_id).order_by(p.queued_at).limit(limit))]

    def done_pending(self, tx: SqlUnit, patient_ids: list[str]) -> None:
        """Forget pending entries once their linking commits (in the linking transaction)."""
        for chunk in _chunks(sorted(set(patient_ids))):
            tx.conn.execute(
                delete(identity_pending).where(among(tx.conn, identity_pending.c.patient_id, chunk))
            )


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


def _review_dict(row) -> dict:
    out = {str(k): row[k] for k in row.keys()}
    out["features"] = orjson.loads(out["features"]) if out.get("features") else {}
    return out


def _candidates(
    conn: Connection, keys: dict[str, list[str]], capped: Callable[[str, int], bool]
) -> dict[str, list[str]]:
    ik = identity_key.c
    all_keys = sorted({k for ks in keys.values() for k in ks})
    sizes: dict[str, int] = {}
    for chunk in _chunks(all_keys):
        sizes.update(
            (k, n)
            for k, n in conn.execute(
                select(ik.block_key, func.count())
                .where(among(conn, ik.block_key, chunk))
                .group_by(ik.block_key)
            )
        )
    usable = sorted(k for k in all_keys if not capped(k, sizes.get(k, 0)))
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

"""Failed sign-in counters (issue 13): one row per account key or address key, shared by every worker.

Keys are opaque to this module ("user:<sha256>" / "addr:<sha256>", built by fhir_server/auth/lockout.py),
so neither usernames nor addresses are stored in clear.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Engine, Integer, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from fhir_server.storage.sql.schema import metadata

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure", BigInteger, nullable=False),  # seconds since the epoch
    Column("locked_until", BigInteger, nullable=False),
)


class ThrottleRepository:
    """The failure counters of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def locked_until(self, keys: list[str]) -> int:
        """The latest lock end among `keys` (0 when none is locked or known)."""
        with self.engine.connect() as conn:
            got = conn.execute(
                select(login_throttle.c.locked_until).where(login_throttle.c.key.in_(keys))
            ).scalars()
            return max(got, default=0)

    def record_failure(self, key: str, now: int, forget_after: int, lock_for) -> int:
        """Count one failure (a counter idle `forget_after` seconds starts over); `lock_for(failures)` gives
        the lock length in seconds. Returns the failure count."""
        try:
            return self._record(key, now, forget_after, lock_for)
        except IntegrityError:  # two first failures raced on the insert: the row exists now
            return self._record(key, now, forget_after, lock_for)

    def _record(self, key: str, now: int, forget_after: int, lock_for) -> int:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(login_throttle).where(login_throttle.c.key == key).with_for_update()
            ).first()
            failures = 1 if row is None or now - row.last_failure > forget_after else row.failures + 1
            values = {"failures": failures, "last_failure": now, "locked_until": now + lock_for(failures)}
            if row is None:
                conn.execute(insert(login_throttle).values(key=key, **values))
            else:
                conn.execute(update(login_throttle).where(login_throttle.c.key == key).values(**values))
        return failures

    def clear(self, key: str) -> None:
        """Forget the failures of a key (after a successful sign-in)."""
        with self.engine.begin() as conn:
            conn.execute(delete(login_throttle).where(login_throttle.c.key == key))


def throttle_repository(store) -> ThrottleRepository:
    """The failure counters over a SQL store's engine."""
    return ThrottleRepository(store.engine)

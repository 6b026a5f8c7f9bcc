"""Local clinician accounts for the /ui login (issue 13): one row per user, argon2 hash only.

The hash is computed and checked by the caller (`fhir_server/ui/accounts.py`); this module only
stores rows. Usernames are kept as given (case-sensitive), roles as a space-separated list.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, Column, Engine, String, Table, insert, select, update

from fhir_server.storage.sql.schema import metadata
from fhir_server.timeutil import now_us

app_user = Table(
    "app_user",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("display_name", String(200), nullable=False, default=""),
    Column("password_hash", String(200), nullable=False),
    Column("roles", String(200), nullable=False, default=""),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    # issue 13/14: a department user sees the reports of one (post-2025) province only; NULL = all.
    Column("province", String(2), nullable=True),
)


@dataclass(frozen=True)
class UserRow:
    """One stored account."""

    username: str
    display_name: str
    password_hash: str
    roles: tuple[str, ...]
    disabled: bool
    province: str | None = None


def _row(r) -> UserRow:
    return UserRow(
        r.username, r.display_name, r.password_hash, tuple(r.roles.split()), bool(r.disabled), r.province
    )


class UserRepository:
    """The account table of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        username: str,
        display_name: str,
        password_hash: str,
        roles: tuple[str, ...],
        province: str | None = None,
    ) -> bool:
        """Insert an account; False when the username is taken."""
        with self.engine.begin() as conn:
            if conn.execute(select(app_user.c.username).where(app_user.c.username == username)).first():
                return False
            conn.execute(
                insert(app_user).values(
                    username=username,
                    display_name=display_name,
                    password_hash=password_hash,
                    roles=" ".join(roles),
                    disabled=False,
                    created_at=now_us(),
                    province=province,
                )
            )
        return True

    def get(self, username: str) -> UserRow | None:
        """The account, or None."""
        with self.engine.connect() as conn:
            r = conn.execute(select(app_user).where(app_user.c.username == username)).first()
        return _row(r) if r else None

    def all(self) -> list[UserRow]:
        """Every account, by username."""
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(app_user).order_by(app_user.c.username))]

    def set_disabled(self, username: str, disabled: bool = True) -> bool:
        """Disable (or enable) an account; False when there is no such user."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(app_user).where(app_user.c.username == username).values(disabled=disabled)
            )
        return done.rowcount == 1

    def set_province(self, username: str, province: str | None) -> bool:
        """Bind an account to a province (None: unbound); False when there is no such user."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(app_user).where(app_user.c.username == username).values(province=province)
            )
        return done.rowcount == 1

    def set_hash(self, username: str, password_hash: str) -> None:
        """Replace the stored hash (rehash after argon2 parameters change)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(app_user).where(app_user.c.username == username).values(password_hash=password_hash)
            )


def user_repository(store) -> UserRepository:
    """The account repository over a SQL store's engine."""
    return UserRepository(store.engine)

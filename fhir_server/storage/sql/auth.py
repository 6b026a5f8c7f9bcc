"""Registered clients (SMART Backend Services), used assertion ids (`jti`) and the server's signing key.

`jti` replay protection lives here, not in memory, so it holds across `serve --workers N` processes
and hosts: the first insert of (client, jti) wins; a second one hits the primary key and is refused.
Rows are kept until the assertion's `exp` and swept on later inserts.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from fhir_server.storage.sql.schema import metadata
from fhir_server.timeutil import now_us

auth_client = Table(
    "auth_client",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("public_key", Text, nullable=False),  # JWKS (JSON) or PEM
    Column("scopes", Text, nullable=False),
    Column("facility", String(32), nullable=True),
    Column("province", String(32), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

auth_jti = Table(
    "auth_jti",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires", BigInteger, nullable=False),  # seconds since the epoch
)

auth_key = Table(
    "auth_key",
    metadata,
    # One row per slot ("server"): the primary key makes the first of several starting workers win.
    Column("slot", String(16), primary_key=True),
    Column("kid", String(64), nullable=False),
    Column("alg", String(16), nullable=False),
    Column("private_pem", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)


@dataclass(frozen=True)
class ClientRecord:
    """One registered client."""

    client_id: str
    name: str
    public_key: str
    scopes: str
    facility: str | None
    province: str | None
    enabled: bool


class EngineRepository:
    """Tables of one database reached through its engine (the auth and SMART App Launch repositories)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _write(self) -> Connection:
        # Marks the connection as a writer: SQLite serialises writers on it.
        return self.engine.connect().execution_options(write=True)


class AuthRepository(EngineRepository):
    """The auth tables of one database."""

    def add_client(self, record: ClientRecord) -> bool:
        """Register a client; False when the id is taken."""
        try:
            with self._write() as conn, conn.begin():
                conn.execute(insert(auth_client).values(**record.__dict__, created_at=now_us()))
        except IntegrityError:
            return False
        return True

    def client(self, client_id: str) -> ClientRecord | None:
        """A registered client by id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(*_CLIENT_COLS).where(auth_client.c.client_id == client_id)).first()
        return ClientRecord(*row) if row else None

    def clients(self) -> list[ClientRecord]:
        """Every registered client, by id."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_CLIENT_COLS).order_by(auth_client.c.client_id)).all()
        return [ClientRecord(*r) for r in rows]

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable a client; False when unknown."""
        with self._write() as conn, conn.begin():
            res = conn.execute(
                update(auth_client).where(auth_client.c.client_id == client_id).values(enabled=enabled)
            )
        return bool(res.rowcount)

    def use_jti(self, client_id: str, jti: str, expires: int, now: int) -> bool:
        """Record an assertion id; False when it was already used (a replay)."""
        try:
            with self._write() as conn, conn.begin():
                conn.execute(delete(auth_jti).where(auth_jti.c.expires < now))
                conn.execute(insert(auth_jti).values(client_id=client_id, jti=jti, expires=expires))
        except IntegrityError:
            return False
        return True

    def signing_key(self, generate) -> tuple[str, str, str]:
        """The server's signing key (kid, alg, private PEM): the stored one, else `generate()` stored first.

        Several workers starting together race to insert; the loser reads the winner's key."""
        row = self._key()
        if row:
            return row
        kid, alg, pem = generate()
        try:
            with self._write() as conn, conn.begin():
                conn.execute(
                    insert(auth_key).values(
                        slot="server", kid=kid, alg=alg, private_pem=pem, created_at=now_us()
                    )
                )
        except IntegrityError:
            pass  # another worker stored its key first: use that one
        row = self._key()
        assert row is not None
        return row

    def _key(self) -> tuple[str, str, str] | None:
        c = auth_key.c
        with self.engine.connect() as conn:
            row = conn.execute(select(c.kid, c.alg, c.private_pem).where(c.slot == "server")).first()
        return (row[0], row[1], row[2]) if row else None


_CLIENT_COLS = (
    auth_client.c.client_id,
    auth_client.c.name,
    auth_client.c.public_key,
    auth_client.c.scopes,
    auth_client.c.facility,
    auth_client.c.province,
    auth_client.c.enabled,
)

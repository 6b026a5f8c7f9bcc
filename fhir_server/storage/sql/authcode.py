"""SMART App Launch state (issue 13): app clients' redirect URIs, one-time authorization codes, refresh
tokens, and the FHIR user (Practitioner) of a local account.

Codes and refresh tokens are stored as SHA-256 hashes only, so a database dump hands out nothing usable.
Both are consumed with one conditional UPDATE (`used = false` → `true`): of two workers racing on
the same code, exactly one sees rowcount 1; the other sees a replay. Rows live in the database, not in
memory, so the flow works across `serve --workers N` processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Row,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from fhir_server.storage.sql.auth import EngineRepository
from fhir_server.storage.sql.schema import metadata

auth_app = Table(
    "auth_app",
    metadata,
    # An app client: its auth_client row (name, scopes, enabled) plus how it authenticates.
    Column("client_id", String(128), primary_key=True),
    Column("redirect_uris", Text, nullable=False),  # space-separated, matched exactly
    Column("public", Boolean, nullable=False),
)

auth_code = Table(
    "auth_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("username", String(64), nullable=False),
    Column("scope", Text, nullable=False),
    Column("patient", String(64), nullable=True),
    Column("nonce", String(256), nullable=True),
    Column("code_challenge", String(128), nullable=False),
    Column("expires", BigInteger, nullable=False),  # seconds since the epoch
    Column("used", Boolean, nullable=False),
)

auth_refresh = Table(
    "auth_refresh",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    # The code the chain started from: a replayed code or a reused refresh token revokes the family.
    Column("family", String(64), nullable=False, index=True),
    Column("client_id", String(128), nullable=False),
    Column("username", String(64), nullable=False),
    Column("scope", Text, nullable=False),
    Column("patient", String(64), nullable=True),
    Column("expires", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False),
    Column("revoked", Boolean, nullable=False),
)

user_fhir = Table(
    "user_fhir",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("fhir_user", String(200), nullable=False),  # e.g. Practitioner/bs-lan
)


@dataclass(frozen=True)
class AppClient:
    """How an app client authenticates at the authorization endpoint."""

    client_id: str
    redirect_uris: tuple[str, ...]
    public: bool


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization code (or a refresh token) stands for."""

    client_id: str
    redirect_uri: str
    username: str
    scope: str
    patient: str | None
    nonce: str | None
    code_challenge: str
    expires: int
    family: str


class Consumed:
    """Outcome of spending a code or refresh token."""

    FRESH, REPLAYED, UNKNOWN = "fresh", "replayed", "unknown"


class AuthCodeRepository(EngineRepository):
    """The SMART App Launch tables of one database."""

    # -- app clients -------------------------------------------------------------------------------
    def set_app(self, client_id: str, redirect_uris: tuple[str, ...], public: bool) -> None:
        """Register (or replace) the redirect URIs and type of an app client."""
        with self._write() as conn, conn.begin():
            conn.execute(delete(auth_app).where(auth_app.c.client_id == client_id))
            conn.execute(
                insert(auth_app).values(
                    client_id=client_id, redirect_uris=" ".join(redirect_uris), public=public
                )
            )

    def app(self, client_id: str) -> AppClient | None:
        """The app registration of a client, or None (a system-only client)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(auth_app).where(auth_app.c.client_id == client_id)).first()
        return AppClient(row.client_id, tuple(row.redirect_uris.split()), bool(row.public)) if row else None

    # -- authorization codes -----------------------------------------------------------------------
    def add_code(self, code_hash: str, grant: CodeGrant, now: int) -> None:
        """Store a fresh code (sweeping expired ones)."""
        with self._write() as conn, conn.begin():
            conn.execute(delete(auth_code).where(auth_code.c.expires < now))
            conn.execute(
                insert(auth_code).values(
                    code_hash=code_hash,
                    client_id=grant.client_id,
                    redirect_uri=grant.redirect_uri,
                    username=grant.username,
                    scope=grant.scope,
                    patient=grant.patient,
                    nonce=grant.nonce,
                    code_challenge=grant.code_challenge,
                    expires=grant.expires,
                    used=False,
                )
            )

    def spend_code(self, code_hash: str) -> tuple[str, CodeGrant | None]:
        """Mark a code used; (FRESH, grant) the first time, (REPLAYED, grant) after, (UNKNOWN, None)."""
        state, row = self._spend_once(auth_code, auth_code.c.code_hash, code_hash)
        return state, (_grant(row, code_hash) if row is not None else None)

    def _spend_once(self, table: Table, key: Column, value: str, *unspent) -> tuple[str, Row | None]:
        """One conditional UPDATE `used = false → true`: of racing callers exactly one wins (FRESH)."""
        with self._write() as conn, conn.begin():
            won = conn.execute(
                update(table).where(key == value, table.c.used.is_(False), *unspent).values(used=True)
            ).rowcount
            row = conn.execute(select(table).where(key == value)).first()
        if row is None:
            return Consumed.UNKNOWN, None
        return (Consumed.FRESH if won == 1 else Consumed.REPLAYED), row

    # -- refresh tokens ----------------------------------------------------------------------------
    def add_refresh(self, token_hash: str, grant: CodeGrant) -> None:
        """Store a refresh token of a family (`grant.expires` is the token's own expiry)."""
        with self._write() as conn, conn.begin():
            conn.execute(
                insert(auth_refresh).values(
                    token_hash=token_hash,
                    family=grant.family,
                    client_id=grant.client_id,
                    username=grant.username,
                    scope=grant.scope,
                    patient=grant.patient,
                    expires=grant.expires,
                    used=False,
                    revoked=False,
                )
            )

    def spend_refresh(self, token_hash: str) -> tuple[str, CodeGrant | None]:
        """Mark a refresh token used; REPLAYED when it was used before or its family is revoked."""
        c = auth_refresh.c
        state, row = self._spend_once(auth_refresh, c.token_hash, token_hash, c.revoked.is_(False))
        return state, (_grant(row, row.family) if row is not None else None)

    def revoke_family(self, family: str) -> int:
        """Revoke every refresh token issued from one code; the number revoked."""
        with self._write() as conn, conn.begin():
            done = conn.execute(
                update(auth_refresh)
                .where(auth_refresh.c.family == family, auth_refresh.c.revoked.is_(False))
                .values(revoked=True)
            )
        return int(done.rowcount or 0)

    def revoke_refresh(self, token_hash: str, client_id: str) -> tuple[str, str | None]:
        """RFC 7009: revoke a refresh token's family if it was issued to `client_id`.

        ("revoked", username), ("unknown", None), or ("other_client", username) when another client holds it
        (nothing revoked)."""
        c = auth_refresh.c
        with self._write() as conn, conn.begin():
            row = conn.execute(
                select(c.family, c.client_id, c.username).where(c.token_hash == token_hash)
            ).first()
            if row is None:
                return "unknown", None
            if row.client_id != client_id:
                return "other_client", row.username
            conn.execute(
                update(auth_refresh).where(c.family == row.family, c.revoked.is_(False)).values(revoked=True)
            )
        return "revoked", row.username

    # -- FHIR user of an account -------------------------------------------------------------------
    def set_fhir_user(self, username: str, fhir_user: str) -> None:
        """Link an account to its FHIR resource (`Practitioner/<id>`)."""
        with self._write() as conn, conn.begin():
            conn.execute(delete(user_fhir).where(user_fhir.c.username == username))
            conn.execute(insert(user_fhir).values(username=username, fhir_user=fhir_user))

    def fhir_user(self, username: str) -> str | None:
        """The account's FHIR resource reference, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(user_fhir.c.fhir_user).where(user_fhir.c.username == username)).first()
        return str(row[0]) if row else None


def _grant(row: Row, family: str) -> CodeGrant:
    """A code or refresh-token row as the grant it stands for (a refresh row has no redirect, nonce, PKCE)."""
    values = row._mapping
    return CodeGrant(
        row.client_id,
        values.get("redirect_uri", ""),
        row.username,
        row.scope,
        row.patient,
        values.get("nonce"),
        values.get("code_challenge", ""),
        int(row.expires),
        family,
    )


def authcode_repository(store) -> AuthCodeRepository:
    """The SMART App Launch repository over a SQL store's engine."""
    return AuthCodeRepository(store.engine)

"""Clinician accounts: argon2id password hashes (argon2-cffi) over the account table.

Used by `lienthong users …` and by the /ui login. A login check costs one argon2 verification even
for an unknown user, so response time does not tell which usernames exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fhir_server.security import Principal
from fhir_server.storage.sql.users import UserRepository, UserRow

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("lienthong-no-such-user")
ROLES = ("clinician", "admin")
# A clinician reads every resource (cross-hospital view) and writes nothing through the view.
CLINICIAN_SCOPES = frozenset({"user/*.rs"})
ADMIN_SCOPES = frozenset({"user/*.rs", "user/AuditEvent.rs"})


@dataclass(frozen=True)
class SessionUser:
    """Who is logged in to the view (kept in the signed session cookie)."""

    username: str
    display_name: str
    roles: tuple[str, ...]
    province: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether this user may see audit trails."""
        return "admin" in self.roles

    def principal(self) -> Principal:
        """The caller as the API's rules see it: the user and `user/*.rs` (admins: audit reads too), bound
        to the account's province when it has one."""
        scopes = ADMIN_SCOPES if self.is_admin else CLINICIAN_SCOPES
        return Principal(f"user/{self.username}", scopes, province=self.province)


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _HASHER.hash(password)


def add_user(
    repo: UserRepository,
    username: str,
    display_name: str,
    password: str,
    admin: bool,
    province: str | None = None,
) -> bool:
    """Create an account (bound to `province` when given); False when the username is taken."""
    roles = ("clinician", "admin") if admin else ("clinician",)
    return repo.add(username, display_name, hash_password(password), roles, province)


def authenticate(repo: UserRepository, username: str, password: str) -> SessionUser | None:
    """The user when the password is right and the account enabled, else None."""
    row: UserRow | None = repo.get(username) if username else None
    try:
        _HASHER.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    if _HASHER.check_needs_rehash(row.password_hash):
        repo.set_hash(row.username, hash_password(password))
    return SessionUser(row.username, row.display_name, row.roles, row.province)

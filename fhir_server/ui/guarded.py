"""Password sign-in with lockout and an audit trail (issue 13), shared by /ui/login and /auth/authorize.

A locked account or address is answered without checking the password, the same way for every
username, so the answer never tells whether an account exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.audit.signin import signin_event
from fhir_server.auth.lockout import lockout_for
from fhir_server.settings import Settings
from fhir_server.storage.sql.users import user_repository
from fhir_server.ui.accounts import SessionUser, authenticate


@dataclass(frozen=True)
class SignIn:
    """The result of one attempt: the user, or None with the seconds left when locked out."""

    user: SessionUser | None
    wait: int = 0


def _audit(trail, event: dict) -> None:
    if trail is not None:
        trail.record_event(event)


def sign_in(
    store, settings: Settings, trail, username: str, password: str, address: str | None, where: str
) -> SignIn:
    """Check a password under the lockout rules and audit the attempt (blocking: run in a thread)."""
    lock = lockout_for(store, settings)
    wait = lock.wait(username, address)
    if wait:
        _audit(trail, signin_event(username, address, "locked", where))
        return SignIn(None, wait)
    user = authenticate(user_repository(store), username, password)
    if user is None:
        lock.failed(username, address)
        _audit(trail, signin_event(username, address, "failed", where))
        return SignIn(None)
    lock.succeeded(username)
    _audit(trail, signin_event(username, address, "success", where))
    return SignIn(user)

"""Sign-in lockout with exponential backoff (issue 13), per account and per source address.

After `login_max_failures` wrong passwords for one username (existing or not: the answer must not tell
which names exist) sign-in for it is refused for `login_lockout_seconds`, doubling with every further
failure up to `login_lockout_max` (OWASP Authentication Cheat Sheet, "account lockout"; NIST SP 800-63B
§5.2.2 rate limiting). An address gets four times the allowance, since a hospital's staff often share
one NAT address. Keys are SHA-256 hashes, so the table holds no username or address in clear.
"""

from __future__ import annotations

import hashlib
import time

from fhir_server.settings import Settings
from fhir_server.storage.sql.throttle import ThrottleRepository, throttle_repository

ADDRESS_FACTOR = 4


def _key(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


class Lockout:
    """The lockout rules over the failure counters of one store."""

    def __init__(self, repo: ThrottleRepository, settings: Settings) -> None:
        self.repo = repo
        self.limit = settings.login_max_failures
        self.base = settings.login_lockout_seconds
        self.cap = settings.login_lockout_max

    def _lock_for(self, allowance: int):
        def lock_for(failures: int) -> int:
            if failures < allowance:
                return 0
            return min(self.base * 2 ** min(failures - allowance, 30), self.cap)

        return lock_for

    def _keys(self, username: str, address: str | None) -> list[str]:
        keys = [_key("user", username)]
        if address:
            keys.append(_key("addr", address))
        return keys

    def wait(self, username: str, address: str | None) -> int:
        """Seconds until this account/address may try again (0: now)."""
        if self.limit <= 0:
            return 0
        return max(self.repo.locked_until(self._keys(username, address)) - int(time.time()), 0)

    def failed(self, username: str, address: str | None) -> None:
        """Count a wrong password (or unknown user) for the account and the address."""
        if self.limit <= 0:
            return
        now = int(time.time())
        self.repo.record_failure(_key("user", username), now, self.cap, self._lock_for(self.limit))
        if address:
            allowance = self.limit * ADDRESS_FACTOR
            self.repo.record_failure(_key("addr", address), now, self.cap, self._lock_for(allowance))

    def succeeded(self, username: str) -> None:
        """A right password: the account's count starts over (the address's decays on its own)."""
        if self.limit > 0:
            self.repo.clear(_key("user", username))


def lockout_for(store, settings: Settings) -> Lockout:
    """The lockout rules over a SQL store."""
    return Lockout(throttle_repository(store), settings)

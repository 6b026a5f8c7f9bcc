"""Helpers of the tests that run a real `lienthong serve` process."""

from __future__ import annotations

import time

import httpx


def wait_for(check, what: str, seconds: float = 60):
    """Poll `check()` until it returns something true (returned); fail with `what` after `seconds`."""
    deadline = time.time() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, OSError):
            pass
        assert time.time() < deadline, what
        time.sleep(0.2)

"""Bounded time per fuzz case without timing assertions: a case that has not returned after a generous
limit is reported as a hang (its thread is left behind; the run fails)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
HANG_SECONDS = 60.0


class Hang(AssertionError):
    """The call did not finish within the watchdog's limit."""


def within(call: Callable[[], T], seconds: float = HANG_SECONDS, what: str = "case") -> T:
    """Run `call` in a daemon thread; its result, its exception, or Hang after `seconds`."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="fuzz-watchdog")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise Hang(f"{what} did not finish within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]

"""Logging failures without patient data: exception type and stack frames, never the message text.

Exception messages carry values (SQL parameters, parsed fields, names), so they stay out of logs;
the precise reason is kept where it belongs: the OperationOutcome, the ACK ERR segment or the
dead-letter row.
"""

from __future__ import annotations

import logging
import traceback


def log_failure(logger: logging.Logger, message: str, exc: BaseException, *args: object) -> None:
    """Log `message` with the exception's type and where it was raised (no exception text)."""
    frames = "".join(traceback.format_tb(exc.__traceback__)) if exc.__traceback__ else ""
    logger.error(message + " [%s]\n%s", *args, type(exc).__name__, frames)

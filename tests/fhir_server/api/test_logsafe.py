"""Failures are logged without patient data: the exception type and stack, never its message."""

from __future__ import annotations

import logging

from fhir_server.logsafe import log_failure


def test_log_failure_keeps_type_and_location_but_not_the_message(caplog):
    log = logging.getLogger("lienthong.test")
    patient = {"name": "NGUYỄN VĂN AN", "cccd": "079090001234"}
    try:
        raise ValueError(f"bad birth date for {patient['name']}, CCCD {patient['cccd']}")
    except ValueError as exc:
        with caplog.at_level(logging.ERROR):
            log_failure(log, "parsing inbox %s crashed", exc, 42)
    text = caplog.text
    assert "parsing inbox 42 crashed" in text and "ValueError" in text and "test_logsafe.py" in text
    assert "NGUYỄN" not in text and "079090001234" not in text

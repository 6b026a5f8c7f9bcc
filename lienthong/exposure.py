"""Secure by default (issue 13): serving without authentication is for a local try-out only.

On a loopback address without auth the server runs and says loudly that anyone on this machine can
read every record; on any other address it refuses to start unless `--insecure-dev` is given.
"""

from __future__ import annotations

import ipaddress

from fhir_server.settings import Settings
from lienthong.i18n import _


class InsecureBinding(Exception):
    """Serving a network address without authentication was not explicitly allowed."""


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def exposure_warning(settings: Settings) -> str | None:
    """The warning to print before serving, or None when auth is on; raises InsecureBinding when
    the bind address is not loopback, auth is off and `insecure_dev` is not set."""
    if settings.auth_mode != "off":
        return None
    if is_loopback(settings.host):
        return _(
            "WARNING: authentication is OFF (LIENTHONG_AUTH=off). Anyone on this machine can read and "
            "change every patient record. For a local try-out only; set LIENTHONG_AUTH=jwt before real use."
        )
    if not settings.insecure_dev:
        raise InsecureBinding(
            _(
                "Refusing to serve {host} without authentication: patient records would be open to the "
                "network. Set LIENTHONG_AUTH=jwt, bind 127.0.0.1, or pass --insecure-dev for a "
                "development machine.",
                host=settings.host,
            )
        )
    return _(
        "WARNING: --insecure-dev: serving {host} WITHOUT authentication. Every patient record is open "
        "to anyone who can reach this address.",
        host=settings.host,
    )

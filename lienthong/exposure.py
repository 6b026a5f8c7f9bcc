"""Secure by default (issue 13): serving without authentication is for a local try-out only.

On a loopback address without auth the server runs and says loudly that anyone on this machine can
read every record; on any other address it refuses to start unless `--insecure-dev` is given.

These warnings are for the hospital's operator, so they are Vietnamese unless the reader named a
language (`--lang`, LIENTHONG_LANG, or a vi/en locale): an unset, C or POSIX locale (a container, a
systemd unit) still gets Vietnamese, where the rest of the CLI falls back to English.
"""

from __future__ import annotations

import ipaddress

from fhir_server.i18n import normalize
from fhir_server.settings import Settings
from lienthong.i18n import _

_stated_lang: str | None = None  # set by the CLI from --lang / the environment


def state_reader_lang(lang: str | None) -> str | None:
    """Record the language the reader named (None: none named); returns the previous value."""
    global _stated_lang
    previous, _stated_lang = _stated_lang, normalize(lang)
    return previous


def warning_lang() -> str:
    """The language of the start-up warnings: the one the reader named, else Vietnamese."""
    return _stated_lang or "vi"


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

"""The composition root's gettext domain (catalog: lienthong/locale/vi/LC_MESSAGES/lienthong.po)."""

from __future__ import annotations

from pathlib import Path

from fhir_server.i18n import Domain

DOMAIN = Domain("lienthong", Path(__file__).parent / "locale")
_ = DOMAIN.gettext
msg = DOMAIN.msg

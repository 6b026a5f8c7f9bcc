"""The adapters' gettext domain (catalog: adapters/locale/vi/LC_MESSAGES/adapters.po); see fhir_server/i18n.py."""

from __future__ import annotations

from pathlib import Path

from fhir_server.i18n import Domain, Msg

DOMAIN = Domain("adapters", Path(__file__).parent / "locale")
_ = DOMAIN.gettext
msg = DOMAIN.msg


class Problem(ValueError):
    """A ValueError whose explanation is a translatable message (str() stays the English text)."""

    def __init__(self, message: Msg | str) -> None:
        super().__init__(str(message))
        self.message: Msg | None = message if isinstance(message, Msg) else None

    def text(self, lang: str | None = None) -> str:
        """The explanation in `lang` (the current language when None)."""
        return self.message.render(lang) if self.message is not None else str(self)

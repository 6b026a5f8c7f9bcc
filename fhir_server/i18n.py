"""Messages in the reader's language: Vietnamese first, English as the source text (gettext catalogs).

Each top-level package owns one gettext domain (`fhir_server`, `adapters`, `lienthong`) with its catalog
in `<package>/locale/vi/LC_MESSAGES/<package>.po` (compiled `.mo` next to it; `scripts/i18n.py`
extracts, updates and compiles them, docs/i18n.md has the workflow). Message ids are the English texts
with `str.format` placeholders.

Two ways to say something:
- `_("{n} file(s) ingested", n=3)`: translated now, in the current language (CLI output).
- `msg("{ref} not found", ref=...)`: a `Msg` translated when it is rendered, so the language can be
  chosen late: errors raised deep in the server are rendered per request by `Accept-Language`
  (`FhirError(..).localized(lang)`), ingest errors are stored as message id + parameters in dead
  letters and shown in the reader's language.

English is the message id itself, so rendering in English never touches a catalog (the hot path of a
server that is not asked for Vietnamese pays nothing). Catalogs are loaded once per process and domain.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

LANGS = ("vi", "en")
SOURCE = "en"  # the language of the message ids

_process_lang = SOURCE  # set by the CLI from --lang / LIENTHONG_LANG / LANG
_context_lang: ContextVar[str | None] = ContextVar("lienthong_lang", default=None)


def normalize(value: str | None) -> str | None:
    """A supported language from a locale or language tag ('vi_VN.UTF-8', 'vi-VN', 'en'), else None."""
    if not value:
        return None
    tag = value.strip().split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    if tag in LANGS:
        return tag
    if tag in ("c", "posix"):
        return SOURCE
    return None


def lang_from_locale(env: Mapping[str, str]) -> str:
    """The language of a process environment: LIENTHONG_LANG, else LC_ALL, LC_MESSAGES, LANG (POSIX order).

    Vietnamese when the locale is Vietnamese, English otherwise."""
    return stated_lang(env) or SOURCE


def stated_lang(env: Mapping[str, str]) -> str | None:
    """The language the environment names: LIENTHONG_LANG, else a vi/en locale; None when unset, C or POSIX."""
    explicit = normalize(env.get("LIENTHONG_LANG"))
    if explicit:
        return explicit
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        raw = env.get(name)
        if raw:
            tag = raw.strip().split(".")[0].split("@")[0].lower()
            return None if tag in ("c", "posix") else normalize(raw)
    return None


def accept_language(header: str | None, default: str = SOURCE) -> str:
    """The best supported language of an HTTP Accept-Language header (q-values honoured)."""
    if not header:
        return default
    best, best_q = default, -1.0
    for pos, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        lang = "*" if tag.strip() == "*" else normalize(tag)
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if lang == "*":
            lang = default
        # Earlier entries win ties, as the header lists preferences in order.
        if lang and q > 0 and q - pos * 1e-6 > best_q:
            best, best_q = lang, q - pos * 1e-6
    return best


def current_lang() -> str:
    """The language of this request/task if one was set (`use_lang`), else the process's."""
    return _context_lang.get() or _process_lang


def process_lang() -> str:
    """The process language (what `set_lang` set), ignoring any `use_lang` block."""
    return _process_lang


def set_lang(lang: str | None) -> str:
    """Set the process language (the CLI does this once); unknown values fall back to English."""
    global _process_lang
    _process_lang = normalize(lang) or SOURCE
    return _process_lang


@contextmanager
def use_lang(lang: str | None) -> Iterator[str]:
    """Render in `lang` within this block (this thread/task only)."""
    token = _context_lang.set(normalize(lang) or SOURCE)
    try:
        yield current_lang()
    finally:
        _context_lang.reset(token)


class Localized(Protocol):
    """Anything that can say itself in a language (a gettext Msg, or texts given per language)."""

    def render(self, lang: str | None = None) -> str:
        """The text in `lang` (the current language when None)."""
        ...

    def to_json(self) -> dict:
        """A JSON-ready form that `from_json` turns back into an equal object."""
        ...


class Domain:
    """One package's catalog: `gettext` now, or `msg` for later; loaded lazily once per language."""

    def __init__(self, name: str, localedir: str | Path) -> None:
        self.name = name
        self.localedir = str(localedir)
        self._catalogs: dict[str, gettext.NullTranslations] = {}
        _DOMAINS[name] = self

    def catalog(self, lang: str) -> gettext.NullTranslations:
        """The compiled catalog of a language (a pass-through one when none is installed)."""
        cat = self._catalogs.get(lang)
        if cat is None:
            cat = self._catalogs[lang] = self._load(lang)
        return cat

    def _load(self, lang: str) -> gettext.NullTranslations:
        """The shipped .mo; compiled from the .po in memory when the .mo is missing or older (an edited
        catalog works before `scripts/i18n.py compile` has been run)."""
        po = Path(self.localedir) / lang / "LC_MESSAGES" / f"{self.name}.po"
        mo = po.with_suffix(".mo")
        if po.exists() and (not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime):
            try:
                return _compile_po(po, lang, self.name)
            except Exception:  # noqa: BLE001 - a broken .po must not take the CLI or server down
                if not mo.exists():
                    return gettext.NullTranslations()
        return gettext.translation(self.name, self.localedir, languages=[lang], fallback=True)

    def translate(self, text: str, lang: str | None = None) -> str:
        """The translation of a message id (the id itself in English or when untranslated)."""
        lang = lang or current_lang()
        if lang == SOURCE:
            return text
        return self.catalog(lang).gettext(text)

    def gettext(self, text: str, **params: Any) -> str:
        """Translate into the current language now, then fill the placeholders."""
        out = self.translate(text)
        return _fill(out, params) if params else out

    def msg(self, text: str, **params: Any) -> Msg:
        """A message rendered later, in the language of whoever reads it."""
        return Msg(self, text, params)


def _compile_po(po: Path, lang: str, domain: str) -> gettext.GNUTranslations:
    """A .po file compiled in memory (Babel)."""
    import io

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=domain)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def _fill(template: str, params: Mapping[str, Any], lang: str | None = None) -> str:
    """str.format with nested messages rendered in the same language."""
    if not params:
        return template
    values = {k: (v.render(lang) if isinstance(v, (Msg, Texts)) else v) for k, v in params.items()}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        # A translation with a broken placeholder must not hide the error it describes.
        return template + " " + repr(values)


@dataclass(frozen=True, slots=True)
class Msg:
    """A message id of a domain plus its parameters; `str()` is the English text."""

    domain: Domain
    text: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def render(self, lang: str | None = None) -> str:
        """The message in `lang` (the current language when None)."""
        lang = lang or current_lang()
        return _fill(self.domain.translate(self.text, lang), self.params, lang)

    def __str__(self) -> str:
        return self.render(SOURCE)

    def to_json(self) -> dict:
        """{"domain", "id", "params"}: enough to render it again in any language."""
        params = {k: (v.to_json() if isinstance(v, (Msg, Texts)) else v) for k, v in self.params.items()}
        return {"domain": self.domain.name, "id": self.text, "params": params}


@dataclass(frozen=True, slots=True)
class Texts:
    """A message already written in each language (rule messages kept as data, e.g. rules.yaml)."""

    by_lang: Mapping[str, str]

    def render(self, lang: str | None = None) -> str:
        """The text in `lang`, else English, else any."""
        lang = lang or current_lang()
        return self.by_lang.get(lang) or self.by_lang.get(SOURCE) or next(iter(self.by_lang.values()), "")

    def __str__(self) -> str:
        return self.render(SOURCE)

    def to_json(self) -> dict:
        """{"texts": {lang: text}}."""
        return {"texts": dict(self.by_lang)}


_DOMAINS: dict[str, Domain] = {}


def from_json(data: Mapping | str | None) -> Msg | Texts | None:
    """The message `to_json` produced (None when it cannot be rebuilt: unknown domain, plain text)."""
    if not isinstance(data, Mapping):
        return None
    if "texts" in data:
        return Texts(dict(data["texts"]))
    domain = _DOMAINS.get(str(data.get("domain")))
    if domain is None or "id" not in data:
        return None
    params = {
        k: (from_json(v) or v) if isinstance(v, Mapping) else v for k, v in data.get("params", {}).items()
    }
    return Msg(domain, str(data["id"]), params)


def render(message: Localized | str, lang: str | None = None) -> str:
    """Text of a message or of a plain string (already in its only language)."""
    return message if isinstance(message, str) else message.render(lang)


DOMAIN = Domain("fhir_server", Path(__file__).parent / "locale")
_ = DOMAIN.gettext
msg = DOMAIN.msg

"""Gettext catalogs of Lienthong: extract message ids, update the .po files, compile the .mo files, check.

    python scripts/i18n.py update    # extract `_("…")` / `msg("…")` from each package into its vi .po
    python scripts/i18n.py compile   # .po -> .mo (shipped in the package, read by fhir_server/i18n.py)
    python scripts/i18n.py check     # exit 1 when a message has no Vietnamese translation or a .mo is stale

One domain per top-level package (fhir_server, adapters, lienthong); see docs/i18n.md.
"""

from __future__ import annotations

import contextlib
import gettext
import io
import sys
from datetime import datetime, timezone
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("fhir_server", "adapters", "lienthong")
LANGS = ("vi",)
KEYWORDS = {"_": None, "msg": None}
METHOD_MAP = [("**.py", "python")]


def po_path(domain: str, lang: str) -> Path:
    """Where a domain's catalog for one language lives."""
    return ROOT / domain / "locale" / lang / "LC_MESSAGES" / f"{domain}.po"


def extract(domain: str) -> Catalog:
    """Every message id used in the package's Python code (with its source locations)."""
    template = Catalog(project="lienthong", domain=domain, charset="utf-8")
    # Babel warns (on stderr) about f-strings passed as format parameters; those are values, not ids.
    with contextlib.redirect_stderr(io.StringIO()):
        found = list(
            extract_from_dir(
                ROOT / domain, METHOD_MAP, keywords=KEYWORDS, comment_tags=("i18n:",), strip_comment_tags=True
            )
        )
    for filename, lineno, message, comments, _ctx in found:
        if "locale" in Path(filename).parts:
            continue
        template.add(message, None, [(f"{domain}/{filename}", lineno)], auto_comments=comments)
    return template


def read(path: Path, lang: str, domain: str) -> Catalog:
    """A .po file (an empty catalog when it does not exist yet)."""
    if not path.exists():
        return Catalog(locale=lang, domain=domain, project="lienthong", charset="utf-8")
    with path.open("rb") as fh:
        return read_po(fh, locale=lang, domain=domain)


HEADER = """Vietnamese messages of Lienthong ({domain}): the English message ids are the source text.
Edit msgstr here, then run `python scripts/i18n.py compile`; see docs/i18n.md.
License: Apache-2.0, like the rest of Lienthong."""
FIXED_DATE = datetime(2026, 12, 1, tzinfo=timezone.utc)  # constant dates keep the header out of diffs


def _header(cat: Catalog, domain: str) -> None:
    """Project header of a catalog (no fuzzy flag, no changing dates)."""
    cat.header_comment = "\n".join(f"# {line}" for line in HEADER.format(domain=domain).splitlines())
    cat.fuzzy = False
    cat.project, cat.version = "lienthong", "0.1"
    cat.msgid_bugs_address = ""
    cat.copyright_holder = "Lienthong contributors"
    cat.last_translator = "Lienthong contributors"
    cat.language_team = "Vietnamese"
    cat.creation_date = cat.revision_date = FIXED_DATE


def update() -> None:
    """Merge freshly extracted ids into each .po: new ids appear untranslated, unused ones are dropped."""
    for domain in DOMAINS:
        template = extract(domain)
        for lang in LANGS:
            path = po_path(domain, lang)
            cat = read(path, lang, domain)
            cat.update(template, no_fuzzy_matching=True)
            cat.obsolete.clear()
            _header(cat, domain)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as fh:
                # No line numbers: they would change the catalog on every unrelated edit of the code.
                write_po(fh, cat, width=110, sort_output=False, include_previous=False, include_lineno=False)
            missing = [m.id for m in cat if m.id and not m.string]
            print(f"{path.relative_to(ROOT)}: {len(cat)} message(s), {len(missing)} untranslated")


def mo_bytes(cat: Catalog) -> bytes:
    """The compiled form of a catalog."""
    buf = io.BytesIO()
    write_mo(buf, cat, use_fuzzy=False)
    return buf.getvalue()


def compile_all() -> None:
    """Write each .mo from its .po."""
    for domain in DOMAINS:
        for lang in LANGS:
            po = po_path(domain, lang)
            po.with_suffix(".mo").write_bytes(mo_bytes(read(po, lang, domain)))
            print(f"{po.with_suffix('.mo').relative_to(ROOT)} written")


def problems() -> list[str]:
    """What is wrong with the catalogs: untranslated or fuzzy ids, ids missing from a .po, stale .mo."""
    out: list[str] = []
    for domain in DOMAINS:
        used = {m.id: m.locations for m in extract(domain) if m.id}
        for lang in LANGS:
            po = po_path(domain, lang)
            cat = read(po, lang, domain)
            for mid, locations in used.items():
                entry = cat.get(mid)
                where = ", ".join(f"{f}:{n}" for f, n in locations[:2])
                if entry is None:
                    out.append(f"{po.name} [{lang}]: not extracted yet ({where}): {mid!r}")
                elif not entry.string or entry.fuzzy:
                    out.append(f"{po.name} [{lang}]: untranslated ({where}): {mid!r}")
            mo = po.with_suffix(".mo")
            if not mo.exists():
                out.append(f"{mo.relative_to(ROOT)} missing: run scripts/i18n.py compile")
                continue
            with mo.open("rb") as fh:
                shipped = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
            fresh = gettext.GNUTranslations(io.BytesIO(mo_bytes(cat)))._catalog  # type: ignore[attr-defined]
            if shipped != fresh:
                out.append(f"{mo.relative_to(ROOT)} is stale: run scripts/i18n.py compile")
    return out


def main(argv: list[str]) -> int:
    """Command-line entry point."""
    cmd = argv[1] if len(argv) > 1 else "check"
    if cmd == "update":
        update()
    elif cmd == "compile":
        compile_all()
    elif cmd == "check":
        found = problems()
        for p in found:
            print(p)
        return 1 if found else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

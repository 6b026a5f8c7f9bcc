"""Entry point of the `lienthong` script: choose the language first, then build and run the CLI.

The language is known before the commands are built, so `--help` is translated as well:
`--lang vi|en` anywhere on the command line, else LIENTHONG_LANG, else the locale (LANG=vi_VN…).
"""

from __future__ import annotations

import os
import sys

from fhir_server.i18n import normalize, set_lang, stated_lang
from fhir_server.settings import Settings


def pop_lang(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the --lang value, the arguments without it): `--lang vi`, `--lang=vi`, at any position."""
    out: list[str] = []
    lang = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out += argv[i:]
            break
        if arg == "--lang" and i + 1 < len(argv):
            lang = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--lang="):
            lang = arg.split("=", 1)[1]
            i += 1
            continue
        out.append(arg)
        i += 1
    return lang, out


def main() -> None:
    """Run `lienthong` with the chosen language."""
    lang, args = pop_lang(sys.argv[1:])
    stated = normalize(lang) or stated_lang(os.environ)
    set_lang(stated or Settings.from_env().lang)
    from lienthong.cli import app

    # The root callback would reset the language from the environment: hand it the reader's choice
    # (not when there is no command at all, which shows the help; nor when none was named).
    app(args=(["--lang", stated] if stated else []) + args if args else [], prog_name="lienthong")


if __name__ == "__main__":
    main()

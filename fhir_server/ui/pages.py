"""Server-rendered pages shared by the clinician view and the SMART sign-in (`/auth/authorize`).

One Jinja2 environment (autoescaping on), the reader's language (Vietnamese first: English only when
the browser asks for it), and the CSRF token helpers both sign-in forms use.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from functools import cache

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from fhir_server.i18n import accept_language, use_lang


@cache
def templates() -> Environment:
    """The Jinja2 environment (templates shipped in fhir_server/ui/templates)."""
    return Environment(
        loader=PackageLoader("fhir_server.ui", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def reader_lang(request: Request) -> str:
    """Vietnamese first: English only when the browser asks for it."""
    return accept_language(request.headers.get("accept-language"), default="vi")


def render_page(
    request: Request,
    name: str,
    texts: Callable[[], dict[str, str]],
    headers: Mapping[str, str],
    status: int = 200,
    **context,
) -> HTMLResponse:
    """Render a template in the reader's language, its texts (`t`) looked up in that language."""
    with use_lang(reader_lang(request)):
        html = templates().get_template(name).render(t=texts(), **context)
    return HTMLResponse(html, status_code=status, headers=dict(headers))


def new_csrf_token() -> str:
    """A fresh random CSRF token."""
    return secrets.token_urlsafe(32)


def csrf_matches(sent: str, expected: str) -> bool:
    """Whether a form's CSRF token equals the one the server handed out (both present)."""
    return bool(sent) and bool(expected) and secrets.compare_digest(sent, expected)

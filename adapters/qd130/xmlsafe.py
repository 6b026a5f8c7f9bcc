"""Parse untrusted XML safely: no DTDs, no entities, no network, no huge trees."""

from __future__ import annotations

import re

from lxml import etree

from adapters.i18n import Problem, msg

BOM = b"\xef\xbb\xbf"

# The standard never uses a DTD; any DOCTYPE/ENTITY declaration is an attack or a foreign file.
_DTD_RE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    huge_tree=False,
    load_dtd=False,
    dtd_validation=False,
    remove_comments=True,
    remove_pis=True,
    strip_cdata=True,
)


class UnsafeXml(Problem):
    """The document declares a DTD or entities (XML bomb / external entity attempt)."""


class BadXml(Problem):
    """The bytes are not well-formed XML."""


def strip_bom(data: bytes) -> bytes:
    """Drop a UTF-8 byte-order mark and leading whitespace."""
    data = data.lstrip()
    while data.startswith(BOM):
        data = data[len(BOM) :].lstrip()
    return data


def _prolog(data: bytes) -> bytes:
    """Bytes before the root element's start tag (where a DOCTYPE would have to be)."""
    pos = 0
    n = len(data)
    while pos < n:
        lt = data.find(b"<", pos)
        if lt < 0:
            return data
        nxt = data[lt + 1 : lt + 2]
        if nxt == b"?":
            end = data.find(b"?>", lt)
            pos = n if end < 0 else end + 2
        elif data.startswith(b"<!--", lt):
            end = data.find(b"-->", lt)
            pos = n if end < 0 else end + 3
        elif nxt == b"!":
            return data[: lt + 16]
        else:
            return data[:lt]
    return data


def parse_xml(data: bytes) -> etree._Element:
    """Parse bytes into an element tree root, refusing DTDs/entities with a clear error."""
    data = strip_bom(data)
    if _DTD_RE.search(_prolog(data)):
        raise UnsafeXml(msg("DTD/entity declarations are not allowed (possible XML bomb or external entity)"))
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadXml(msg("not well-formed XML: {detail}", detail=str(exc))) from None
    if root is None:
        raise BadXml(msg("empty XML document"))
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise UnsafeXml(msg("DTD declarations are not allowed"))
    return root

"""FHIR XML on request (`_format=xml`, `Accept: application/fhir+xml`) and XML request bodies.

JSON is the server's format and stays its fast path: stored JSON bytes go out untouched and nothing
here runs. When a route's content negotiation (`responses.check_accept`) chose XML it marks the
request's ASGI scope; `XmlMiddleware` then converts that one response's JSON body through the
fhir.resources models (which know FHIR's element order and primitive/extension split). The conversion
is costly (docs/fhir-rest.md has the measurement: hundreds of times the cost of returning stored
JSON), which is why it is opt-in per request and never touches a JSON request.
"""

from __future__ import annotations

from typing import Any

import orjson
from fhir.resources import get_fhir_model_class
from lxml import etree

from fhir_server.errors import FhirError
from fhir_server.i18n import msg

FHIR_XML = "application/fhir+xml; charset=utf-8"
SCOPE_KEY = "lienthong.format"
_NS = "{http://hl7.org/fhir}"


def _parser() -> etree.XMLParser:
    # No entity expansion, no DTD or network fetches: XML bodies come from outside.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def to_xml(body: bytes) -> bytes:
    """A FHIR JSON resource (bytes) as FHIR XML bytes; 406 if this resource cannot be expressed."""
    data = orjson.loads(body)
    try:
        model = get_fhir_model_class(data["resourceType"])
        out = model.model_validate(data).model_dump_xml()
    except Exception as exc:  # noqa: BLE001 - any model failure means "cannot render as XML"
        raise FhirError.make(
            406,
            "not-supported",
            msg(
                "This {type} cannot be rendered as XML ({kind}); ask for JSON",
                type=str(data.get("resourceType")),
                kind=type(exc).__name__,
            ),
        )
    return out.encode("utf-8") if isinstance(out, str) else out


def from_xml(raw: bytes) -> dict[str, Any]:
    """A FHIR XML resource as its JSON form (a dict); 400 when it is not well-formed FHIR XML."""
    try:
        root = etree.fromstring(raw, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise FhirError.bad_request(msg("Malformed XML: {detail}", detail=str(exc)), code="structure")
    tag = root.tag if isinstance(root.tag, str) else ""
    if not tag.startswith(_NS):
        raise FhirError.bad_request(msg("XML root element must be in the FHIR namespace"), code="structure")
    res_type = tag[len(_NS) :]
    try:
        model = get_fhir_model_class(res_type)
    except KeyError:
        raise FhirError.bad_request(msg("Unknown resource type {type!r} (FHIR R4)", type=res_type))
    try:
        resource = model.model_validate_xml(raw, xmlparser=_parser())
    except Exception as exc:  # noqa: BLE001 - pydantic and lxml errors alike are a bad body
        raise FhirError.bad_request(
            msg("Invalid FHIR XML: {detail}", detail=str(exc)[:500]), code="structure"
        )
    return orjson.loads(resource.model_dump_json())


class XmlMiddleware:
    """Turns the JSON response of a request that negotiated XML into FHIR XML (pure ASGI)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict = {}
        chunks: list[bytes] = []

        async def send_wrapper(message) -> None:
            if scope.get(SCOPE_KEY) != "xml":
                await send(message)
                return
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            await _send_xml(send, start, b"".join(chunks))

        await self.app(scope, receive, send_wrapper)


async def _send_xml(send, start: dict, body: bytes) -> None:
    headers = [
        (k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-type", b"content-length")
    ]
    status = start.get("status", 200)
    is_json = any(k.lower() == b"content-type" and b"json" in v for k, v in start.get("headers", []))
    if body and is_json:
        try:
            body = to_xml(body)
        except FhirError as exc:
            status, body = exc.status, to_xml(orjson.dumps(exc.outcome))
        headers.append((b"content-type", FHIR_XML.encode()))
    else:
        headers += [(k, v) for k, v in start.get("headers", []) if k.lower() == b"content-type"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

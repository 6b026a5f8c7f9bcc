"""Hypothesis strategies for hostile FHIR requests: valid Vietnamese resources with one element mutated
(wrong JSON type, NUL, huge or non-finite-looking numbers, over-long strings, deep nesting, unknown
types), sent as create, update, PATCH or inside a transaction/batch. Used by the bounded suite run
(test_fuzz.py) and the longer `bench/fuzz_server.py`."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from urllib.parse import quote

from hypothesis import strategies as st

from tests.fhir_server.vn_data import CCCD, observation, patient

SEEDS = [
    patient(),
    patient("TRẦN THỊ BÌNH", "001190000002"),
    observation("Patient/bn-fuzz"),
    {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/bn-fuzz"},
        "period": {"start": "2024-03-15T08:00:00+07:00", "end": "2024-03-15T10:00:00+07:00"},
        "reasonCode": [{"text": "Sốt cao, ho kéo dài"}],
    },
    {
        "resourceType": "Binary",
        "contentType": "text/plain",
        "data": base64.b64encode("Kết quả xét nghiệm".encode()).decode(),
    },
]


def _deep(levels: int) -> dict:
    node: dict = {"url": "http://example.org/tang", "valueString": "sâu"}
    for _ in range(levels):
        node = {"url": "http://example.org/tang", "extension": [node]}
    return node


HOSTILE = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            0,
            -1,
            2**64,
            -(2**63) - 1,
            1e308,
            "1e400",
            "",
            "\u0000",
            "NGUYỄN\u0000VĂN",
            "Ω" * 3000,
            "9" * 9000,
            [],
            {},
            [[[[[]]]]],
            {"resourceType": "BenhNhan", "id": "x", "name": "NGUYỄN VĂN AN 079090001234"},
            {"resourceType": 7},
            {"reference": {"x": 1}},
            {"reference": "Patient?identifier=" + CCCD + "|\u0000"},
            {"value": "1e400", "system": "http://unitsofmeasure.org", "code": "mg"},
            "2024-13-45",
            "99999-01-01T00:00:00Z",
            "urn:uuid:" + "f" * 500,
            _deep(120),
        ]
    ),
    st.text(max_size=40),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _fresh(draw) -> object:
    """A hostile value that later mutations may change without touching the shared samples (which
    would make hypothesis' generation differ between runs)."""
    return copy.deepcopy(draw(HOSTILE))


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indexes) into a JSON value, the root included."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _set(doc: object, path: tuple, value: object) -> object:
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]  # type: ignore[index]
    parent[path[-1]] = value  # type: ignore[index]
    return doc


def _drop(doc: object, path: tuple) -> object:
    if not path:
        return doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]  # type: ignore[index]
    del parent[path[-1]]  # type: ignore[arg-type]
    return doc


@st.composite
def mutated_resource(draw) -> object:
    """A seed resource with one to three elements replaced, removed or added."""
    doc: object = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "drop" and path:
            doc = _drop(doc, path)
        elif action == "add" and isinstance(doc, dict):
            doc[draw(st.sampled_from(["extension", "contained", "meta", "text", "id", "bogus"]))] = _fresh(
                draw
            )
        else:
            doc = _set(doc, path, _fresh(draw))
    return doc


@dataclass
class Request:
    """One HTTP request to the FHIR base."""

    method: str
    path: str
    body: bytes
    headers: dict

    def __repr__(self) -> str:  # hypothesis prints this on failure
        return f"{self.method} {self.path} {self.body[:300]!r} {self.headers}"


def _dumps(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def hostile_request(draw) -> Request:
    """A create, update, PATCH, conditional create or Bundle carrying a mutated resource."""
    res = draw(mutated_resource())
    kind = res.get("resourceType") if isinstance(res, dict) else None
    rtype = kind if isinstance(kind, str) and kind.isalpha() and kind[:1].isupper() else "Patient"
    shape = draw(st.sampled_from(["create", "update", "conditional", "patch", "transaction", "batch"]))
    fhir = {"Content-Type": "application/fhir+json"}
    if shape == "create":
        return Request("POST", rtype, _dumps(res), fhir)
    if shape == "conditional":
        value = draw(st.one_of(st.text(max_size=20), st.sampled_from(["\u0000", "9" * 3000, "1e400"])))
        return Request(
            "POST", rtype, _dumps(res), {**fhir, "If-None-Exist": "identifier=" + quote(value, safe="|")}
        )
    if shape == "update":
        if isinstance(res, dict):
            res["id"] = "bn-fuzz"
        return Request("PUT", f"{rtype}/bn-fuzz", _dumps(res), fhir)
    if shape == "patch":
        path = draw(
            st.sampled_from(["/name", "/name/0/family", "/birthDate", "/extension", "/id", "/gender"])
        )
        ops = [
            {
                "op": draw(st.sampled_from(["replace", "add", "remove", "test", "move"])),
                "path": path,
                "value": _fresh(draw),
            }
        ]
        return Request(
            "PATCH", "Patient/bn-fuzz", _dumps(ops), {"Content-Type": "application/json-patch+json"}
        )
    request: dict = {
        "method": draw(st.sampled_from(["POST", "PUT", "PATCH", "GET", "DELETE", 5])),
        "url": rtype,
    }
    if draw(st.booleans()):
        request[draw(st.sampled_from(["ifMatch", "ifNoneExist", "url", "method"]))] = _fresh(draw)
    entry: dict = {
        "fullUrl": draw(st.one_of(st.just("urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"), HOSTILE)),
        "resource": res,
        "request": request,
    }
    bundle = {"resourceType": "Bundle", "type": shape, "entry": [entry]}
    return Request("POST", "", _dumps(bundle), fhir)

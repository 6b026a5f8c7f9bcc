"""PATCH documents: JSON Patch (RFC 6902), JSON Merge Patch (RFC 7386) and FHIRPath Patch (R4 Parameters).

The format comes from the Content-Type when it names one (`application/json-patch+json`,
`application/merge-patch+json`); a plain JSON/FHIR media type is read by shape, as clients send it
(fhirpy's `patch()` and `save(fields=…)` post a merge patch as `application/json`): an array is a
JSON Patch, a `Parameters` resource a FHIRPath Patch, any other object a merge patch.

FHIRPath Patch is supported on simple paths only (`Type.element[index].child…`); functions, filters
(`where()`, `first()`, …) and `|` are refused with 422 naming the operation, never guessed at.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonpatch
from fhir.resources import get_fhir_model_class

from fhir_server.errors import FhirError
from fhir_server.i18n import msg

JSON_PATCH = "json-patch"
MERGE_PATCH = "merge-patch"
FHIRPATH_PATCH = "fhirpath-patch"
MEDIA = {"application/json-patch+json": JSON_PATCH, "application/merge-patch+json": MERGE_PATCH}
OPERATIONS = ("add", "insert", "delete", "replace", "move")

_STEP = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(?:\[(\d+)\])?$")
_TYPE = re.compile(r"abc\.(\w+)Type\b")


def kind_of(body: object, media: str | None = None) -> str:
    """The patch format of a body: the one its media type names, else the one its shape says."""
    kind = MEDIA.get((media or "").split(";")[0].strip().lower())
    if kind == JSON_PATCH and not isinstance(body, list):
        raise FhirError.bad_request(msg("JSON Patch body must be an array of operations"), code="structure")
    if kind == MERGE_PATCH and not isinstance(body, dict):
        raise FhirError.bad_request(msg("JSON Merge Patch body must be a JSON object"), code="structure")
    if kind:
        return kind
    if isinstance(body, list):
        return JSON_PATCH
    if isinstance(body, dict):
        return FHIRPATH_PATCH if body.get("resourceType") == "Parameters" else MERGE_PATCH
    raise FhirError.bad_request(
        msg("PATCH body must be a JSON Patch array, a merge patch object or a FHIRPath Patch Parameters"),
        code="structure",
    )


def apply(resource: dict, body: object, kind: str | None = None) -> dict:
    """The resource after the patch (the input is not modified); 400/422 when the patch cannot apply."""
    kind = kind or kind_of(body)
    if kind == JSON_PATCH:
        try:
            return jsonpatch.JsonPatch(body).apply(resource)  # type: ignore[arg-type]
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
            raise FhirError.unprocessable(msg("JSON Patch could not be applied: {detail}", detail=str(exc)))
    if kind == MERGE_PATCH:
        patched = merge_patch(resource, body)
        return patched if isinstance(patched, dict) else {}
    return fhirpath_patch(resource, body)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch: objects merge member by member, null removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# -- FHIRPath Patch ------------------------------------------------------------------------------
class _Op:
    """One `operation` parameter of a FHIRPath Patch, with its position for error messages."""

    def __init__(self, number: int, parts: dict[str, dict]):
        self.number = number
        self.parts = parts
        self.type = _primitive(parts.get("type"))

    def fail(self, text: str, status: int = 422) -> FhirError:
        """An error naming this operation (number and type)."""
        detail = msg(
            "FHIRPath Patch operation {number} ({type}): {detail}",
            number=self.number,
            type=self.type or "?",
            detail=text,
        )
        if status == 400:
            return FhirError.bad_request(detail, expression=f"Parameters.parameter[{self.number - 1}]")
        return FhirError.unprocessable(detail, expression=f"Parameters.parameter[{self.number - 1}]")

    def text(self, name: str) -> str:
        """A required string part (path, name)."""
        value = _primitive(self.parts.get(name))
        if not isinstance(value, str) or not value:
            raise self.fail(f"missing part {name!r}", 400)
        return value

    def integer(self, name: str) -> int:
        """A required non-negative integer part (index, source, destination)."""
        value = _primitive(self.parts.get(name))
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(f"part {name!r} must be a non-negative integer", 400)
        return value

    def value(self) -> tuple[Any, str | None]:
        """The value part: (JSON value, its FHIR type name or None for an anonymous complex value)."""
        part = self.parts.get("value")
        if part is None:
            raise self.fail("missing part 'value'", 400)
        return _value_of(part)


def _primitive(part: dict | None) -> Any:
    if not part:
        return None
    for key, value in part.items():
        if key.startswith("value"):
            return value
    return None


def _value_of(part: dict) -> tuple[Any, str | None]:
    for key, value in part.items():
        if key.startswith("value") and len(key) > 5:
            return copy.deepcopy(value), key[5:]
    if part.get("part"):
        # An anonymous (backbone) value is spelled as nested parts, one per element.
        out: dict = {}
        for sub in part["part"]:
            out[sub.get("name")] = _value_of(sub)[0]
        return out, None
    return None, None


def _operations(body: dict) -> list[_Op]:
    ops = []
    for number, param in enumerate(body.get("parameter") or [], start=1):
        if not isinstance(param, dict) or param.get("name") != "operation":
            raise FhirError.bad_request(
                msg("FHIRPath Patch parameter {number} must be named 'operation'", number=number),
                code="structure",
            )
        parts = {str(p.get("name")): p for p in param.get("part") or [] if isinstance(p, dict)}
        op = _Op(number, parts)
        if op.type not in OPERATIONS:
            raise op.fail(f"unsupported operation type; supported: {', '.join(OPERATIONS)}", 400)
        ops.append(op)
    if not ops:
        raise FhirError.bad_request(msg("FHIRPath Patch has no operation"), code="required")
    return ops


def _steps(op: _Op, res_type: str) -> list[tuple[str, int | None]]:
    path = op.text("path")
    head, *rest = path.split(".")
    if head != res_type:
        raise op.fail(f"path {path!r} must start with {res_type!r}")
    steps = []
    for raw in rest:
        found = _STEP.match(raw)
        if not found:
            raise op.fail(
                f"path {path!r} is not supported: only element names with an optional [index] "
                "(no functions or filters)"
            )
        steps.append((found.group(1), int(found.group(2)) if found.group(2) is not None else None))
    return steps


def _node(op: _Op, resource: dict, steps: list[tuple[str, int | None]]) -> Any:
    """The one element a path selects, or None when it selects nothing."""
    node: Any = resource
    for name, index in steps:
        if isinstance(node, list):
            if len(node) != 1:
                raise op.fail(f"path selects {len(node)} elements before {name!r}; add an [index]")
            node = node[0]
        if not isinstance(node, dict) or name not in node:
            return None
        node = node[name]
        if index is not None:
            if not isinstance(node, list) or index >= len(node):
                return None
            node = node[index]
    return node


def _parent(op: _Op, resource: dict, steps: list[tuple[str, int | None]]) -> dict:
    if not steps:
        raise op.fail("the path must name an element below the resource")
    parent = _node(op, resource, steps[:-1])
    if isinstance(parent, list) and len(parent) == 1:
        parent = parent[0]
    if not isinstance(parent, dict):
        raise op.fail("the path does not exist in the resource")
    return parent


def _model_of(res_type: str, steps: list[tuple[str, int | None]]) -> Any:
    """The fhir.resources model class of the element a path selects (None for primitives)."""
    try:
        cls: Any = get_fhir_model_class(res_type)
        for name, _ in steps:
            found = _TYPE.search(str(cls.model_fields[name].annotation))
            if not found:
                return None
            cls = get_fhir_model_class(found.group(1))
        return cls
    except (KeyError, AttributeError, ValueError):
        return None


def _add(op: _Op, resource: dict, steps: list[tuple[str, int | None]]) -> None:
    target = _node(op, resource, steps) if steps else resource
    if isinstance(target, list) and len(target) == 1:
        target = target[0]
    if not isinstance(target, dict):
        raise op.fail("the path does not exist in the resource")
    name = op.text("name")
    value, vtype = op.value()
    model = _model_of(resource["resourceType"], steps)
    fields = getattr(model, "model_fields", {}) if model is not None else {}
    key = name
    if fields and name not in fields and vtype and f"{name}{vtype[:1].upper()}{vtype[1:]}" in fields:
        key = f"{name}{vtype[:1].upper()}{vtype[1:]}"  # a choice element: deceased + Boolean
    if fields and key not in fields:
        raise op.fail(f"{name!r} is not an element here")
    many = "List[" in str(fields[key].annotation) if key in fields else isinstance(target.get(key), list)
    if many:
        target.setdefault(key, []).append(value)
    else:
        target[key] = value


def _list_at(op: _Op, resource: dict, steps: list[tuple[str, int | None]]) -> list:
    if not steps or steps[-1][1] is not None:
        raise op.fail("the path must name a list (no [index] at its end)")
    items = _node(op, resource, steps)
    if items is None:
        parent = _parent(op, resource, steps)
        items = parent.setdefault(steps[-1][0], [])
    if not isinstance(items, list):
        raise op.fail("the path does not name a list")
    return items


def _apply_op(op: _Op, resource: dict) -> None:
    steps = _steps(op, resource["resourceType"])
    if op.type == "add":
        _add(op, resource, steps)
    elif op.type == "insert":
        items = _list_at(op, resource, steps)
        index = op.integer("index")
        if index > len(items):
            raise op.fail(f"index {index} is beyond the list's {len(items)} items")
        items.insert(index, op.value()[0])
    elif op.type == "move":
        items = _list_at(op, resource, steps)
        source, destination = op.integer("source"), op.integer("destination")
        if source >= len(items) or destination >= len(items):
            raise op.fail(f"source/destination outside the list's {len(items)} items")
        items.insert(destination, items.pop(source))
    elif op.type == "replace":
        if _node(op, resource, steps) is None:
            raise op.fail("the path does not exist in the resource")
        _set(op, resource, steps, op.value()[0])
    elif op.type == "delete" and _node(op, resource, steps) is not None:
        _set(op, resource, steps, None)  # deleting what is absent is not an error (FHIRPath Patch)


def _set(op: _Op, resource: dict, steps: list[tuple[str, int | None]], value: Any) -> None:
    """Replace (or, with value None, remove) the element a path selects."""
    parent = _parent(op, resource, steps)
    name, index = steps[-1]
    if index is None:
        if value is None:
            parent.pop(name, None)
            parent.pop(f"_{name}", None)
        else:
            parent[name] = value
        return
    items = parent[name]
    if value is None:
        items.pop(index)
        if not items:
            del parent[name]
    else:
        items[index] = value


def fhirpath_patch(resource: dict, body: object) -> dict:
    """Apply a FHIRPath Patch (a Parameters resource of `operation`s) to a copy of the resource."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError.bad_request(
            msg("FHIRPath Patch body must be a Parameters resource"), code="structure"
        )
    out = copy.deepcopy(resource)
    for op in _operations(body):
        _apply_op(op, out)
    return out

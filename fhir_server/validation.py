"""Structural validation of incoming resources with the fhir.resources R4B models, R4 rules winning.

fhir.resources ships no R4 models; R4B is wire-compatible for nearly all R4 resources. The known
differences are data in `data/r4-validation.yaml` (types R4B removed or rewrote, error paths to ignore).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from fhir_server.bindings import check_required_bindings
from fhir_server.errors import FhirError, operation_outcome
from fhir_server.i18n import msg

_DATA = Path(__file__).parent / "data"
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@lru_cache(maxsize=1)
def r4_resource_types() -> frozenset[str]:
    """All FHIR R4 resource type names."""
    lines = (_DATA / "r4-resource-types.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=1)
def _r4_rules() -> dict:
    with open(_DATA / "r4-validation.yaml", encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    ignore = data.get("ignore_errors") or ()
    return {
        "unvalidated": frozenset(data.get("unvalidated_types") or ()),
        "ignore": frozenset(e for e in ignore if not e.startswith("*.")),
        "ignore_suffixes": tuple(e[1:] for e in ignore if e.startswith("*.")),
    }


@lru_cache(maxsize=None)
def _model(res_type: str):
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(res_type)


def valid_id(value: str) -> bool:
    """FHIR id syntax: 1-64 of [A-Za-z0-9-.]."""
    return bool(_ID_RE.match(value))


def check_type(res_type: str) -> None:
    """Raise 404 for a resource type R4 does not define."""
    if res_type not in r4_resource_types():
        raise FhirError.make(
            404, "not-supported", msg("Unknown resource type {type!r} (FHIR R4)", type=res_type)
        )


def _expression(res_type: str, loc: tuple) -> str:
    path = res_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("__root__",):
            path += f".{part}"
    return path


def check_shape(body: object, expected_type: str | None = None) -> dict:
    """The cheap checks every write gets: a JSON object of a known R4 type, matching the URL, valid id."""
    if not isinstance(body, dict):
        raise FhirError.bad_request(msg("Resource must be a JSON object"), code="structure")
    res_type = body.get("resourceType")
    if not isinstance(res_type, str):
        raise FhirError.bad_request(msg("Missing resourceType"), code="required", expression="resourceType")
    if expected_type is not None and res_type != expected_type:
        raise FhirError.bad_request(
            msg(
                "Resource type {type!r} in the body does not match {expected!r} in the URL",
                type=res_type,
                expected=expected_type,
            ),
            code="invalid",
            expression="resourceType",
        )
    if res_type not in r4_resource_types():
        raise FhirError.bad_request(
            msg("Unknown resource type {type!r} (FHIR R4)", type=res_type),
            code="not-supported",
            expression="resourceType",
        )
    rid = body.get("id")
    if rid is not None and (not isinstance(rid, str) or not valid_id(rid)):
        raise FhirError.bad_request(
            msg("Invalid resource id {id!r}", id=rid), code="value", expression=f"{res_type}.id"
        )
    return body


# Hard ceiling on JSON nesting for every resource validated: the R4B models recurse and end in
# RecursionError near 300 levels. Requests are bounded earlier by LIENTHONG_MAX_JSON_DEPTH (default 100).
MAX_DEPTH = 200


def json_depth_error(node: object, limit: int = MAX_DEPTH, root: str = "") -> FhirError | None:
    """A 400 naming the first element nested deeper than `limit` JSON levels, or None.

    Iterative on purpose: the model validation, JSON Patch and the indexer recurse, and a body nested
    a few hundred levels deep (extensions inside extensions) would end in RecursionError (a 500)."""
    if not _deeper_than(node, limit):
        return None
    stack: list[tuple[object, str, int]] = [(node, root, 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > limit:
            return FhirError.bad_request(
                msg("JSON nested deeper than {limit} levels at {path}", limit=limit, path=path or "(root)"),
                code="too-costly",
                expression=path or None,
            )
        if isinstance(value, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
    return None


def _deeper_than(node: object, limit: int) -> bool:
    """True when containers nest more than `limit` levels (the cheap pass: containers only, no paths)."""
    stack: list[tuple[object, int]] = [(node, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                push((child, depth + 1))
            elif depth + 1 > limit:
                return True
    return False


def nul_path(node: object, root: str = "") -> str | None:
    """The path of the first string (or key) holding a NUL character, or None."""
    stack: list[tuple[object, str]] = [(node, root)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path or "(root)"
        elif isinstance(value, dict):
            for k, v in value.items():
                child = f"{path}.{k}" if path else str(k)
                if "\x00" in k:
                    return child.replace("\x00", "")
                stack.append((v, child))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(value))
    return None


def _check_contained(body: dict, res_type: str) -> None:
    """400 for a contained resource that is not an object of a known R4 type (the models would KeyError)."""
    contained = body.get("contained")
    if contained is None:
        return
    if not isinstance(contained, list):
        raise FhirError.bad_request(
            msg("{path} must be an array", path=f"{res_type}.contained"),
            code="structure",
            expression=f"{res_type}.contained",
        )
    known = r4_resource_types()
    for i, item in enumerate(contained):
        where = f"{res_type}.contained[{i}]"
        kind = item.get("resourceType") if isinstance(item, dict) else None
        if not isinstance(kind, str) or kind not in known:
            # The type is not echoed: a fuzzer or a broken export may put patient data in it.
            raise FhirError.bad_request(
                msg("{path} is not a resource of a known FHIR R4 type", path=where),
                code="structure",
                expression=f"{where}.resourceType",
            )


def validate(body: object, expected_type: str | None = None) -> dict:
    """Check a parsed JSON body is a structurally valid R4 resource; raise 400 with expressions if not."""
    check_shape(body, expected_type)
    res_type = body["resourceType"]
    too_deep = json_depth_error(body, MAX_DEPTH, res_type)
    if too_deep is not None:
        raise too_deep
    _check_contained(body, res_type)
    # R4's required bindings (R4B models do not check codes); they apply to the types R4B rewrote too.
    bad_codes = check_required_bindings(body)
    if bad_codes:
        raise FhirError(400, {"resourceType": "OperationOutcome", "issue": bad_codes})
    rules = _r4_rules()
    if res_type in rules["unvalidated"]:
        return body
    try:
        _model(res_type).model_validate(body)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            key = ".".join([res_type] + [str(p) for p in loc if not isinstance(p, int)])
            if key in rules["ignore"] or key.endswith(rules["ignore_suffixes"] or ("\0",)):
                continue
            expr = _expression(res_type, loc)
            issues.append(
                operation_outcome("error", "structure", f"{expr}: {err.get('msg')}", expr)["issue"][0]
            )
        if issues:
            raise FhirError(400, {"resourceType": "OperationOutcome", "issue": issues})
    except (ValueError, TypeError) as exc:  # fhir.resources raises these for some malformed primitives
        raise FhirError.bad_request(
            msg("Invalid {type}: {detail}", type=res_type, detail=str(exc)), code="structure"
        )
    except (KeyError, AttributeError, RecursionError) as exc:
        # The models' own lookups fail on shapes they never expected; the message may echo input
        # values (patient data), so only the exception type is reported.
        raise FhirError.bad_request(
            msg("Invalid {type}: {detail}", type=res_type, detail=type(exc).__name__), code="structure"
        )
    return body

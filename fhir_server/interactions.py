"""The FHIR RESTful interactions as functions over a write transaction (`Tx`) or the store.

REST routes and the Bundle processor both call these, so a single PUT and a PUT inside a
transaction Bundle follow exactly the same rules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl

import jsonpatch
import orjson

from fhir_server.errors import FhirError, operation_outcome
from fhir_server.storage.store import Store, StoredResource, Tx
from fhir_server.validation import check_type, valid_id, validate


@dataclass
class Result:
    """What an interaction did: HTTP status, the version it produced or found, an optional outcome."""

    status: int
    stored: StoredResource | None = None
    outcome: dict | None = None
    body: bytes | None = None  # a serialized resource to return as is (e.g. a searchset Bundle)


def parse_query(query: str) -> list[tuple[str, str]]:
    """Split search criteria ("identifier=a|b&_id=x") into (name, value) pairs."""
    return parse_qsl(query, keep_blank_values=True)


def parse_version(etag: str | None) -> int | None:
    """Read the version from an ETag / If-Match value (W/"3", "3" or 3)."""
    if etag is None or etag == "":
        return None
    text = etag.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise FhirError.bad_request(f"Invalid version in If-Match: {etag!r}", code="value")
    return int(text)


def _find(tx: Tx, res_type: str, query: str) -> list[tuple[int, str]]:
    params = parse_query(query)
    if not params:
        raise FhirError.bad_request("Conditional interaction without search criteria", code="required")
    return tx.store.search.find(tx.conn, res_type, params)


def new_id() -> str:
    """A server-assigned id (UUID v4)."""
    return str(uuid.uuid4())


def create(tx: Tx, body: dict, if_none_exist: str | None = None, res_id: str | None = None) -> Result:
    """create (POST), optionally conditional on If-None-Exist."""
    res_type = body["resourceType"]
    if if_none_exist:
        matches = _find(tx, res_type, if_none_exist.lstrip("?"))
        if len(matches) == 1:
            return Result(200, tx.current(res_type, matches[0][1]))
        if len(matches) > 1:
            raise FhirError.precondition_failed(
                f"If-None-Exist criteria matched {len(matches)} {res_type} resources; expected at most one"
            )
    stored, _, _ = tx.put(body, res_id or new_id(), "POST", fresh_id=True)
    return Result(201, stored)


def update(tx: Tx, res_type: str, res_id: str, body: dict, if_match: int | None = None) -> Result:
    """update (PUT Type/id); creates the resource with the client's id when it does not exist."""
    if not valid_id(res_id):
        raise FhirError.bad_request(f"Invalid resource id {res_id!r}", code="value")
    if body.get("id") is None:
        raise FhirError.bad_request(
            "Resource in an update must carry an id", code="required", expression=f"{res_type}.id"
        )
    if body["id"] != res_id:
        raise FhirError.bad_request(
            f"Resource id {body['id']!r} does not match {res_id!r} in the URL",
            code="invalid",
            expression=f"{res_type}.id",
        )
    stored, created, _ = tx.put(body, res_id, "PUT", if_match)
    return Result(201 if created else 200, stored)


def conditional_target(tx: Tx, res_type: str, query: str, body: dict) -> str:
    """The id a conditional update writes to (FHIR R4 http.html#cond-update rules)."""
    matches = _find(tx, res_type, query)
    if len(matches) > 1:
        raise FhirError.precondition_failed(
            f"Conditional update criteria matched {len(matches)} {res_type} resources; expected at most one"
        )
    given = body.get("id")
    if matches:
        target = matches[0][1]
        if given not in (None, target):
            raise FhirError.bad_request(
                f"Resource id {given!r} differs from the matched {res_type}/{target}",
                code="invalid",
                expression=f"{res_type}.id",
            )
        return target
    if given is None:
        return new_id()
    current = tx.current(res_type, given)
    if current is not None and not current.deleted:
        # No match but the id names an existing resource: writing there would bypass the criteria.
        raise FhirError.conflict(
            f"{res_type}/{given} exists but does not match the conditional update criteria"
        )
    return given


def conditional_update(tx: Tx, res_type: str, query: str, body: dict, if_match: int | None = None) -> Result:
    """update by search criteria (PUT Type?criteria)."""
    target = conditional_target(tx, res_type, query, body)
    stored, created, _ = tx.put({**body, "id": target}, target, "PUT", if_match)
    return Result(201 if created else 200, stored)


def patch(tx: Tx, res_type: str, res_id: str, operations: object, if_match: int | None = None) -> Result:
    """patch with a JSON Patch document (RFC 6902)."""
    current = tx.current(res_type, res_id)
    if current is None:
        raise FhirError.not_found(f"{res_type}/{res_id} not found")
    if current.deleted:
        raise FhirError.gone(f"{res_type}/{res_id} was deleted")
    if not isinstance(operations, list):
        raise FhirError.bad_request("JSON Patch body must be an array of operations", code="structure")
    try:
        patched = jsonpatch.JsonPatch(operations).apply(orjson.loads(current.content))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise FhirError.unprocessable(f"JSON Patch could not be applied: {exc}")
    if patched.get("resourceType") != res_type or patched.get("id") != res_id:
        raise FhirError.unprocessable("JSON Patch must not change resourceType or id")
    validate(patched, res_type)
    stored, _, _ = tx.put(patched, res_id, "PATCH", if_match)
    return Result(200, stored)


def delete(tx: Tx, res_type: str, res_id: str, if_match: int | None = None) -> Result:
    """delete (soft: a delete marker version; reads then answer 410)."""
    if if_match is not None:
        current = tx.current(res_type, res_id)
        have = current.version if current and not current.deleted else None
        if have != if_match:
            raise FhirError.precondition_failed(f"If-Match version {if_match} does not match current {have}")
    marker = tx.delete(res_type, res_id)
    msg = (
        f"Deleted {res_type}/{res_id}"
        if marker
        else f"{res_type}/{res_id} did not exist or was already deleted"
    )
    return Result(200, marker, operation_outcome("information", "informational", msg))


def conditional_delete(tx: Tx, res_type: str, query: str) -> Result:
    """delete by search criteria (single match only, as the CapabilityStatement says)."""
    matches = _find(tx, res_type, query)
    if len(matches) > 1:
        raise FhirError.precondition_failed(
            f"Conditional delete criteria matched {len(matches)} {res_type} resources; only single deletes "
            "are supported"
        )
    if not matches:
        return Result(
            200, None, operation_outcome("information", "not-found", "No resource matched the criteria")
        )
    return delete(tx, res_type, matches[0][1])


def read(store: Store, res_type: str, res_id: str) -> StoredResource:
    """read: the current version, 404 if unknown, 410 if deleted."""
    check_type(res_type)
    stored = store.read(res_type, res_id)
    if stored is None:
        raise FhirError.not_found(f"{res_type}/{res_id} not found")
    if stored.deleted:
        raise FhirError(
            410,
            operation_outcome("error", "deleted", f"{res_type}/{res_id} was deleted"),
            headers={"ETag": stored.etag},
        )
    return stored


def vread(store: Store, res_type: str, res_id: str, version: str) -> StoredResource:
    """vread: one version, 404 if unknown, 410 if that version is a delete marker."""
    check_type(res_type)
    if not version.isdigit():
        raise FhirError.not_found(f"Version {version!r} of {res_type}/{res_id} not found")
    stored = store.vread(res_type, res_id, int(version))
    if stored is None:
        raise FhirError.not_found(f"Version {version} of {res_type}/{res_id} not found")
    if stored.deleted:
        raise FhirError.gone(f"Version {version} of {res_type}/{res_id} is a deletion")
    return stored

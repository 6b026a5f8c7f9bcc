"""The FHIR RESTful interactions as functions over a unit of work (writes) or storage (reads).

REST routes and the Bundle processor both call these, so a single PUT and a PUT inside a
transaction Bundle follow exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from fhir_server.errors import FhirError, operation_outcome
from fhir_server.i18n import msg
from fhir_server.ids import new_id
from fhir_server.interactions import conditional, patching
from fhir_server.storage.base import Storage, StoredResource, UnitOfWork
from fhir_server.validation import check_type, valid_id, validate

__all__ = ["Result", "new_id", "parse_version"]

_MAX_VERSION = 2**63 - 1  # versions are BIGINT columns


@dataclass
class Result:
    """What an interaction did: HTTP status, the version it produced or found, an optional outcome."""

    status: int
    stored: StoredResource | None = None
    outcome: dict | None = None
    body: bytes | None = None  # a serialized resource to return as is (e.g. a searchset Bundle)


def parse_version(etag: object) -> int | None:
    """Read the version from an ETag / If-Match value (W/"3", "3" or 3)."""
    if etag is None or etag == "":
        return None
    if not isinstance(etag, (str, int)) or isinstance(etag, bool):
        raise FhirError.bad_request(msg('If-Match must be a version string such as W/"3"'), code="value")
    text = str(etag).strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or len(text) > 19 or int(text) > _MAX_VERSION:
        raise FhirError.bad_request(msg("Invalid version in If-Match: {etag!r}", etag=etag), code="value")
    return int(text)


def create(
    uow: UnitOfWork, body: dict, if_none_exist: str | None = None, res_id: str | None = None
) -> Result:
    """create (POST), optionally conditional on If-None-Exist."""
    res_type = body["resourceType"]
    if if_none_exist:
        found = conditional.at_most_one(uow, res_type, if_none_exist, "If-None-Exist")
        if found is not None:
            return Result(200, uow.current(res_type, found))
    stored, _, _ = uow.put(body, res_id or new_id(), "POST", fresh_id=True)
    return Result(201, stored)


def update(uow: UnitOfWork, res_type: str, res_id: str, body: dict, if_match: int | None = None) -> Result:
    """update (PUT Type/id); creates the resource with the client's id when it does not exist."""
    if not valid_id(res_id):
        raise FhirError.bad_request(msg("Invalid resource id {id!r}", id=res_id), code="value")
    if body.get("id") is None:
        raise FhirError.bad_request(
            "Resource in an update must carry an id", code="required", expression=f"{res_type}.id"
        )
    if body["id"] != res_id:
        raise FhirError.bad_request(
            msg("Resource id {given!r} does not match {id!r} in the URL", given=body["id"], id=res_id),
            code="invalid",
            expression=f"{res_type}.id",
        )
    stored, created, _ = uow.put(body, res_id, "PUT", if_match)
    return Result(201 if created else 200, stored)


def conditional_update(
    uow: UnitOfWork, res_type: str, query: str, body: dict, if_match: int | None = None
) -> Result:
    """update by search criteria (PUT Type?criteria)."""
    target = conditional.update_target(uow, res_type, query, body)
    stored, created, _ = uow.put({**body, "id": target}, target, "PUT", if_match)
    return Result(201 if created else 200, stored)


def patch(
    uow: UnitOfWork,
    res_type: str,
    res_id: str,
    body: object,
    if_match: int | None = None,
    kind: str | None = None,
) -> Result:
    """patch with JSON Patch, JSON Merge Patch or FHIRPath Patch (`kind`, else read from the body's shape)."""
    _check_id(res_type, res_id)
    kind = kind or patching.kind_of(body)
    current = uow.current(res_type, res_id)
    if current is None:
        raise FhirError.not_found(msg("{ref} not found", ref=f"{res_type}/{res_id}"))
    if current.deleted:
        raise FhirError.gone(msg("{ref} was deleted", ref=f"{res_type}/{res_id}"))
    patched = patching.apply(orjson.loads(current.content or b"{}"), body, kind)
    if patched.get("resourceType") != res_type or patched.get("id") != res_id:
        raise FhirError.unprocessable(msg("A patch must not change resourceType or id"))
    validate(patched, res_type)
    stored, _, _ = uow.put(patched, res_id, "PATCH", if_match)
    return Result(200, stored)


def conditional_patch(
    uow: UnitOfWork,
    res_type: str,
    query: str,
    body: object,
    if_match: int | None = None,
    kind: str | None = None,
) -> Result:
    """patch by search criteria (PATCH Type?criteria): 404 without a match, 412 with several."""
    kind = kind or patching.kind_of(body)
    return patch(uow, res_type, conditional.patch_target(uow, res_type, query), body, if_match, kind)


def delete(uow: UnitOfWork, res_type: str, res_id: str, if_match: int | None = None) -> Result:
    """delete (soft: a delete marker version; reads then answer 410)."""
    if not valid_id(res_id):
        raise FhirError.bad_request(msg("Invalid resource id {id!r}", id=res_id), code="value")
    marker = uow.delete(res_type, res_id, if_match)
    text = (
        f"Deleted {res_type}/{res_id}"
        if marker
        else f"{res_type}/{res_id} did not exist or was already deleted"
    )
    return Result(200, marker, operation_outcome("information", "informational", text))


def conditional_delete(uow: UnitOfWork, res_type: str, query: str) -> Result:
    """delete by search criteria (single match only, as the CapabilityStatement says)."""
    target = conditional.at_most_one(uow, res_type, query, "Conditional delete")
    if target is None:
        # R4 http.html#delete: nothing to delete is a success; 204 because there is nothing to return.
        return Result(
            204, None, operation_outcome("information", "not-found", "No resource matched the criteria")
        )
    return delete(uow, res_type, target)


def _check_id(res_type: str, res_id: str) -> None:
    """404 for an id that can never exist (bad syntax, NUL, over 64 characters) before any SQL sees it."""
    if not valid_id(res_id):
        raise FhirError.not_found(msg("{ref} not found", ref=f"{res_type}/{res_id.replace(chr(0), '')}"))


def read(store: Storage, res_type: str, res_id: str) -> StoredResource:
    """read: the current version, 404 if unknown, 410 if deleted."""
    check_type(res_type)
    _check_id(res_type, res_id)
    stored = store.read(res_type, res_id)
    if stored is None:
        raise FhirError.not_found(msg("{ref} not found", ref=f"{res_type}/{res_id}"))
    if stored.deleted:
        gone = FhirError.gone(msg("{ref} was deleted", ref=f"{res_type}/{res_id}"))
        gone.headers = {"ETag": stored.etag}
        raise gone
    return stored


def vread(store: Storage, res_type: str, res_id: str, version: str) -> StoredResource:
    """vread: one version, 404 if unknown, 410 if that version is a delete marker."""
    check_type(res_type)
    _check_id(res_type, res_id)
    if not version.isdigit() or len(version) > 19 or int(version) > _MAX_VERSION:
        raise FhirError.not_found(
            msg("Version {version!r} of {ref} not found", version=version, ref=f"{res_type}/{res_id}")
        )
    stored = store.vread(res_type, res_id, int(version))
    if stored is None:
        raise FhirError.not_found(
            msg("Version {version} of {ref} not found", version=version, ref=f"{res_type}/{res_id}")
        )
    if stored.deleted:
        raise FhirError.gone(
            msg("Version {version} of {ref} is a deletion", version=version, ref=f"{res_type}/{res_id}")
        )
    return stored

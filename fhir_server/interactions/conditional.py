"""Conditional interactions' matching rules, written once for REST and Bundles (FHIR R4 http.html).

| interaction | no match | one match | several |
|---|---|---|---|
| create (If-None-Exist / ifNoneExist) | create | 200, nothing written | 412 |
| update (PUT Type?criteria) | create (server id, or the body's id if free) | update it | 412 |
| patch (PATCH Type?criteria) | 404 | patch it | 412 |
| delete (DELETE Type?criteria) | nothing to delete | delete it | 412 |
| conditional reference (Type?criteria in a Bundle) | 412 | that resource | 412 |

Criteria that decide a write are serialized: the unit of work takes a lock on the normalized criteria
before searching, so two clients sending the same conditional create at once produce one resource.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fhir_server.errors import FhirError
from fhir_server.i18n import msg
from fhir_server.ids import new_id
from fhir_server.storage.base import UnitOfWork


def parse_query(query: str) -> list[tuple[str, str]]:
    """Split search criteria ("identifier=a|b&_id=x") into (name, value) pairs."""
    return parse_qsl(query.lstrip("?"), keep_blank_values=True)


def criteria_key(res_type: str, params: list[tuple[str, str]]) -> str:
    """A canonical text for criteria (order and encoding do not matter), the name of their lock."""
    return f"{res_type}?{urlencode(sorted((k.strip(), v.strip()) for k, v in params))}"


def matches(uow: UnitOfWork, res_type: str, query: str, lock: bool = True) -> list[str]:
    """Ids matching a conditional interaction's criteria (400 without criteria).

    With `lock`, the unit of work first takes the criteria's lock, so a concurrent writer with the
    same criteria waits until this one commits and then sees what it wrote."""
    params = parse_query(query)
    if not params:
        raise FhirError.bad_request(msg("Conditional interaction without search criteria"), code="required")
    if lock:
        uow.lock(criteria_key(res_type, params))
    return uow.find(res_type, params)


def at_most_one(uow: UnitOfWork, res_type: str, query: str, what: str) -> str | None:
    """The single match, or None; 412 when the criteria are not selective enough."""
    found = matches(uow, res_type, query)
    if len(found) > 1:
        raise FhirError.precondition_failed(
            msg(
                "{what} criteria matched {count} {type} resources; expected at most one",
                what=what,
                count=len(found),
                type=res_type,
            )
        )
    return found[0] if found else None


def exactly_one(uow: UnitOfWork, res_type: str, query: str, what: str, none_status: int = 412) -> str:
    """The single match; `none_status` (412, or 404 for conditional patch) when there is none, 412 for
    several."""
    found = matches(uow, res_type, query, lock=False)
    if len(found) == 1:
        return found[0]
    if not found and none_status == 404:
        raise FhirError.not_found(msg("{what}: no {type} matched the criteria", what=what, type=res_type))
    raise FhirError.precondition_failed(
        msg(
            "{what} matched {count} {type} resources; expected one",
            what=what,
            count=len(found),
            type=res_type,
        )
    )


def patch_target(uow: UnitOfWork, res_type: str, query: str) -> str:
    """The id a conditional patch writes to, under the criteria's lock: 404 without a match, 412 with
    several (FHIR R4 http.html#patch)."""
    found = matches(uow, res_type, query)
    if not found:
        raise FhirError.not_found(
            msg("{what}: no {type} matched the criteria", what="Conditional patch", type=res_type)
        )
    if len(found) > 1:
        raise FhirError.precondition_failed(
            msg(
                "{what} matched {count} {type} resources; expected one",
                what="Conditional patch",
                count=len(found),
                type=res_type,
            )
        )
    return found[0]


def update_target(uow: UnitOfWork, res_type: str, query: str, body: dict) -> str:
    """The id a conditional update writes to (FHIR R4 http.html#cond-update rules)."""
    target = at_most_one(uow, res_type, query, "Conditional update")
    given = body.get("id")
    if target is not None:
        if given not in (None, target):
            raise FhirError.bad_request(
                f"Resource id {given!r} differs from the matched {res_type}/{target}",
                code="invalid",
                expression=f"{res_type}.id",
            )
        return target
    if given is None:
        return new_id()
    current = uow.current(res_type, given)
    if current is not None and not current.deleted:
        # No match but the id names an existing resource: writing there would bypass the criteria.
        raise FhirError.conflict(
            msg("{ref} exists but does not match the conditional update criteria", ref=f"{res_type}/{given}")
        )
    return given

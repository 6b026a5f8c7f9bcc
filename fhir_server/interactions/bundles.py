"""transaction and batch Bundle processing (FHIR R4 http.html#transaction).

transaction: all entries in one database transaction, processed in the spec's order (DELETE, POST,
PUT/PATCH, GET), `urn:uuid:` and other fullUrls resolved to the ids the server assigns, any failure
rolls the whole Bundle back and names the failing entry. batch: each entry on its own savepoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from fhir_server.errors import FhirError, operation_outcome
from fhir_server.i18n import msg
from fhir_server.ids import new_id
from fhir_server.interactions import conditional, integrity
from fhir_server.interactions import core as ix
from fhir_server.search.run import run_search
from fhir_server.storage.base import Storage, UnitOfWork
from fhir_server.timeutil import instant
from fhir_server.validation import check_shape, r4_resource_types, validate

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_REASON = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}


@dataclass
class Entry:
    """One Bundle entry's request, parsed."""

    index: int
    method: str
    res_type: str
    res_id: str | None = None
    query: str | None = None
    version: str | None = None
    full_url: str | None = None
    resource: dict | None = None
    if_none_exist: str | None = None
    if_match: int | None = None
    target: str | None = None  # "Type/id" this entry resolves to (for fullUrl rewriting)
    skip_write: bool = False  # conditional create that matched an existing resource
    extra: dict = field(default_factory=dict)


def _fail(index: int, exc: FhirError) -> FhirError:
    for issue in exc.outcome.get("issue", []):
        issue["diagnostics"] = f"Bundle.entry[{index}]: {issue.get('diagnostics', '')}"
        issue["expression"] = (
            [f"Bundle.entry[{index}]"]
            + [
                e
                if e.startswith("Bundle.entry[")  # already names the entry's element (request, fullUrl)
                else f"Bundle.entry[{index}].resource" + e[e.find(".") :]
                if "." in e
                else e
                for e in issue.get("expression", [])
            ]
        )
    return exc


def parse_entry(index: int, raw: object, structural: bool = True) -> Entry:
    """Parse and check one entry's request (method, url, conditional headers, resource).

    `structural=False` skips the R4B model validation (for adapter output, which the adapters' own
    tests validate); the request, resourceType and id checks still run.
    """
    if not isinstance(raw, dict):
        raise FhirError.bad_request("entry must be an object", code="structure")
    request = raw.get("request")
    if not isinstance(request, dict) or not request.get("method") or not request.get("url"):
        raise FhirError.bad_request("entry.request with method and url is required", code="required")
    for key in ("method", "url", "ifMatch", "ifNoneExist", "ifModifiedSince", "ifNoneMatch"):
        if key in request and not isinstance(request[key], str):
            raise FhirError.bad_request(
                msg("entry.request.{key} must be a string", key=key),
                code="structure",
                expression=f"Bundle.entry[{index}].request.{key}",
            )
    if "fullUrl" in raw and not isinstance(raw["fullUrl"], str):
        raise FhirError.bad_request(
            msg("entry.fullUrl must be a string"),
            code="structure",
            expression=f"Bundle.entry[{index}].fullUrl",
        )
    method = str(request["method"]).upper()
    if method not in _ORDER:
        raise FhirError.bad_request(f"Unsupported entry.request.method {method!r}", code="not-supported")
    url = str(request["url"])
    path, _, query = url.partition("?")
    parts = [p for p in urlsplit(path).path.split("/") if p]
    if not parts or parts[0] not in r4_resource_types():
        raise FhirError.bad_request(
            f"entry.request.url {url!r} does not name a FHIR R4 resource type", code="not-supported"
        )
    entry = Entry(
        index,
        method,
        parts[0],
        full_url=raw.get("fullUrl"),
        resource=raw.get("resource"),
        if_none_exist=request.get("ifNoneExist"),
        if_match=ix.parse_version(request.get("ifMatch")),
    )
    if len(parts) >= 2:
        entry.res_id = parts[1]
    if len(parts) >= 4 and parts[2] == "_history":
        entry.version = parts[3]
    entry.query = query or None
    if method in ("POST", "PUT"):
        if structural:
            validate(entry.resource, entry.res_type)
        else:
            check_shape(entry.resource, entry.res_type)
    if method == "PATCH":
        entry.extra["patch"] = _patch_body(entry.resource)
    if method in ("PUT", "PATCH", "DELETE") and not entry.res_id and not entry.query:
        raise FhirError.bad_request(f"{method} needs Type/id or search criteria in entry.request.url")
    return entry


def _patch_body(resource: object) -> object:
    # In a Bundle, JSON Patch travels as a Binary resource (FHIR R4 http.html#patch).
    if isinstance(resource, dict) and resource.get("resourceType") == "Binary" and resource.get("data"):
        import base64

        if not isinstance(resource["data"], str):
            raise FhirError.bad_request(
                msg("Binary.data must be a base64 string"), code="structure", expression="Binary.data"
            )
        try:
            return orjson.loads(base64.b64decode(resource["data"]))
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise FhirError.bad_request(f"PATCH Binary does not hold a JSON Patch document: {exc}")
    if isinstance(resource, dict) and resource.get("resourceType") == "Parameters":
        return resource  # FHIRPath Patch (interactions.patching)
    raise FhirError.bad_request(
        "PATCH entry needs a Binary resource with a JSON Patch document or a FHIRPath Patch Parameters"
    )


def _fix_refs(
    tx: UnitOfWork, node: object, mapping: dict[str, str], cache: dict[str, str], found: list[str]
) -> None:
    """In one walk: point fullUrl references at the ids they resolved to, resolve conditional
    references ("Patient?identifier=...") to the single matching resource, and collect every
    resulting reference in `found` (for the referential-integrity check)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                if value in mapping:
                    node[key] = value = mapping[value]
                elif "?" in value and not value.startswith("#"):
                    node[key] = value = _conditional_target(tx, value, cache)
                found.append(value)
            elif isinstance(value, (dict, list)):
                _fix_refs(tx, value, mapping, cache, found)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                _fix_refs(tx, item, mapping, cache, found)


def _conditional_target(tx: UnitOfWork, reference: str, cache: dict[str, str]) -> str:
    if reference not in cache:
        res_type, _, query = reference.partition("?")
        target = conditional.exactly_one(tx, res_type, query, f"Conditional reference {reference!r}")
        cache[reference] = f"{res_type}/{target}"
    return cache[reference]


def _check_integrity(
    tx: UnitOfWork, entries: list[Entry], refs: dict[int, list[str]], policy: str, base: str
) -> dict[int, list[dict]]:
    """Refuse unresolved urn:uuid references (always) and references to missing resources (strict);
    return the lenient policy's warnings per entry index."""
    present: set[integrity.Key] = set()
    deleted: set[integrity.Key] = set()
    for e in entries:
        if e.method in ("POST", "PUT") and e.target:
            res_type, res_id = e.target.split("/", 1)
            present.add((res_type, res_id))
        elif e.method == "DELETE" and e.res_id:
            deleted.add((e.res_type, e.res_id))
    per_entry: dict[int, dict[integrity.Key, str]] = {}
    for e in entries:
        found = refs.get(e.index, [])
        urns = integrity.unresolved_urns(found)
        if urns:
            where = integrity.path_of(e.resource, urns[0], e.res_type)
            raise _fail(
                e.index,
                FhirError.bad_request(
                    f"tham chiếu {urns[0]!r} không khớp fullUrl nào trong Bundle "
                    f"(reference matches no entry's fullUrl)",
                    code="not-found",
                    expression=where,
                ),
            )
        keys: dict[integrity.Key, str] = {}
        for ref in found:
            key = integrity.target_key(ref, base)
            if key is not None:
                keys.setdefault(key, ref)
        if keys:
            per_entry[e.index] = keys
    wanted = {k for keys in per_entry.values() for k in keys}
    gone = integrity.missing(tx, wanted, present, deleted) if wanted else set()
    warnings: dict[int, list[dict]] = {}
    if not gone:
        return warnings
    by_index = {e.index: e for e in entries}
    for index, keys in sorted(per_entry.items()):
        e = by_index[index]
        problems = [
            (ref, integrity.path_of(e.resource, ref, e.res_type)) for k, ref in keys.items() if k in gone
        ]
        try:
            issues = integrity.verdict(problems, policy)
        except FhirError as exc:
            raise _fail(index, exc)
        if issues:
            warnings[index] = issues
    return warnings


def _response(result: ix.Result | None, representation: bool) -> dict:
    status = result.status if result else 200
    out: dict = {"response": {"status": f"{status} {_REASON.get(status, '')}".strip()}}
    stored = result.stored if result else None
    if stored is not None and not stored.deleted:
        out["response"].update(
            {
                "location": f"{stored.res_type}/{stored.res_id}/_history/{stored.version}",
                "etag": stored.etag,
                "lastModified": instant(stored.last_updated),
            }
        )
        if representation and stored.content:
            out["resource"] = orjson.Fragment(stored.content)
    if result is not None and result.body is not None:
        out["resource"] = orjson.Fragment(result.body)
    if result is not None and result.outcome is not None:
        out["response"]["outcome"] = result.outcome
    return out


def _execute(tx: UnitOfWork, e: Entry, base: str = "") -> ix.Result:
    if e.method == "POST":
        if e.skip_write and e.target:
            res_type, res_id = e.target.split("/", 1)
            return ix.Result(200, tx.current(res_type, res_id))
        return ix.create(tx, e.resource or {}, res_id=e.target.split("/", 1)[1] if e.target else None)
    if e.method == "PUT":
        if e.res_id:
            return ix.update(tx, e.res_type, e.res_id, e.resource or {}, e.if_match)
        return ix.conditional_update(tx, e.res_type, e.query or "", e.resource or {}, e.if_match)
    if e.method == "PATCH":
        res_id = e.res_id or conditional.patch_target(tx, e.res_type, e.query or "")
        return ix.patch(tx, e.res_type, res_id, e.extra["patch"], e.if_match)
    if e.method == "DELETE":
        if e.res_id:
            return ix.delete(tx, e.res_type, e.res_id, e.if_match)
        return ix.conditional_delete(tx, e.res_type, e.query or "")
    return _get(tx, e, base)


def _get(tx: UnitOfWork, e: Entry, base: str = "") -> ix.Result:
    if e.res_id is None:
        found = run_search(tx, e.res_type, conditional.parse_query(e.query or ""), base_url=base)
        return ix.Result(200, body=found)
    current = tx.current(e.res_type, e.res_id)
    if e.version is not None:
        stored = tx.vread(e.res_type, e.res_id, int(e.version)) if e.version.isdigit() else None
        if stored is None or stored.deleted:
            raise FhirError.not_found(f"{e.res_type}/{e.res_id}/_history/{e.version} not found")
        return ix.Result(200, stored)
    if current is None:
        raise FhirError.not_found(f"{e.res_type}/{e.res_id} not found")
    if current.deleted:
        raise FhirError.gone(f"{e.res_type}/{e.res_id} was deleted")
    return ix.Result(200, current)


def _resolve_targets(tx: UnitOfWork, entries: list[Entry]) -> dict[str, str]:
    """Decide every entry's target id before any write, so references can be rewritten."""
    mapping: dict[str, str] = {}
    for e in sorted(entries, key=lambda x: _ORDER[x.method]):
        if e.method == "POST":
            if e.if_none_exist:
                try:
                    found = conditional.at_most_one(tx, e.res_type, e.if_none_exist, "ifNoneExist")
                except FhirError as exc:
                    raise _fail(e.index, exc)
                if found is not None:
                    e.skip_write = True
                    e.target = f"{e.res_type}/{found}"
            if e.target is None:
                e.target = f"{e.res_type}/{new_id()}"
        elif e.method == "PUT" and e.res_id:
            e.target = f"{e.res_type}/{e.res_id}"
        elif e.method == "PUT" and e.query:
            try:
                res_id = conditional.update_target(tx, e.res_type, e.query, e.resource or {})
            except FhirError as exc:
                raise _fail(e.index, exc)
            e.target, e.res_id, e.query = f"{e.res_type}/{res_id}", res_id, None
            e.resource = {**(e.resource or {}), "id": res_id}
        if e.full_url and e.target:
            mapping[e.full_url] = e.target
    return mapping


def _check_overlaps(entries: list[Entry]) -> None:
    seen: dict[str, int] = {}
    for e in entries:
        if e.method in ("PUT", "PATCH", "DELETE") and e.res_id:
            key = f"{e.res_type}/{e.res_id}"
            if key in seen:
                raise FhirError.bad_request(
                    f"Bundle.entry[{e.index}] and Bundle.entry[{seen[key]}] both modify {key}", code="invalid"
                )
            seen[key] = e.index


def process_bundle(
    store: Storage,
    bundle: object,
    representation: bool = False,
    structural: bool = True,
    base: str = "",
    origin: str = "api",
    integrity_policy: str = "strict",
) -> dict:
    """Process a transaction or batch Bundle; returns the response Bundle (dict).

    `base` is the FHIR base URL used in the fullUrls of search entries' results; `integrity_policy`
    (strict | lenient) decides whether a reference to a missing resource refuses the write."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError.bad_request("Expected a Bundle resource", code="structure", expression="Bundle")
    kind = bundle.get("type")
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise FhirError.bad_request(
            "Bundle.entry must be an array", code="structure", expression="Bundle.entry"
        )
    if kind == "transaction":
        return _transaction(store, raw_entries, representation, structural, base, origin, integrity_policy)
    if kind == "batch":
        return _batch(store, raw_entries, representation, structural, base, origin, integrity_policy)
    raise FhirError.bad_request(
        f"Bundle.type must be transaction or batch, not {kind!r}", code="value", expression="Bundle.type"
    )


def _parse_transaction(raw_entries: list, structural: bool) -> list[Entry]:
    entries = []
    for i, raw in enumerate(raw_entries):
        try:
            entries.append(parse_entry(i, raw, structural))
        except FhirError as exc:
            raise _fail(i, exc)
    _check_overlaps(entries)
    return entries


def _apply(
    tx: UnitOfWork,
    entries: list[Entry],
    representation: bool,
    base: str = "",
    integrity_policy: str = "strict",
) -> list[dict]:
    """Run parsed transaction entries inside `tx`: resolve targets, rewrite and check references, execute."""
    tx.prefetch((e.res_type, e.res_id) for e in entries if e.res_id)
    mapping = _resolve_targets(tx, entries)
    cond_cache: dict[str, str] = {}
    refs: dict[int, list[str]] = {}
    for e in entries:
        if e.resource is not None and e.method in ("POST", "PUT"):
            found: list[str] = []
            try:
                _fix_refs(tx, e.resource, mapping, cond_cache, found)
            except FhirError as exc:
                raise _fail(e.index, exc)
            refs[e.index] = found
    warnings = _check_integrity(tx, entries, refs, integrity_policy, base)
    results: dict[int, ix.Result] = {}
    flushed = False
    for e in sorted(entries, key=lambda x: _ORDER[x.method]):
        if e.method in ("GET", "HEAD") and not flushed:
            tx.flush()  # reads and searches (SQL) after this see the entries written before them
            flushed = True
        try:
            results[e.index] = _execute(tx, e, base)
        except FhirError as exc:
            raise _fail(e.index, exc)
    out = [_response(results[e.index], representation) for e in entries]
    for index, issues in warnings.items():
        _add_warnings(out[index], issues)
    return out


def _add_warnings(entry_response: dict, issues: list[dict]) -> None:
    """Attach lenient-policy warnings to one entry's response outcome."""
    response = entry_response["response"]
    outcome = response.get("outcome") or {"resourceType": "OperationOutcome", "issue": []}
    outcome["issue"] = list(outcome["issue"]) + issues
    response["outcome"] = outcome


def _response_bundle(entries: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


def _transaction(
    store: Storage,
    raw_entries: list,
    representation: bool,
    structural: bool,
    base: str,
    origin: str,
    integrity_policy: str,
) -> dict:
    entries = _parse_transaction(raw_entries, structural)
    return _response_bundle(
        store.run(lambda tx: _apply(tx, entries, representation, base, integrity_policy), origin=origin)
    )


def transaction(
    store: Storage, bundle: dict, validate: bool = True, origin: str = "api", integrity_policy: str = "strict"
) -> dict:
    """Process one transaction Bundle atomically; returns the transaction-response Bundle.

    `validate=False` skips the R4B structural validation for trusted producers (adapter output whose
    mappings are validated by their tests); shape, ids and references are still checked."""
    return process_bundle(
        store, bundle, structural=validate, origin=origin, integrity_policy=integrity_policy
    )


def apply_transaction(
    tx: UnitOfWork, bundle: dict, structural: bool = True, integrity_policy: str = "strict"
) -> dict:
    """Apply a transaction Bundle inside an open unit of work (the caller owns commit/savepoints).

    Lets a caller commit several source messages in one database transaction (group commit)."""
    if not isinstance(bundle, dict) or bundle.get("type") != "transaction":
        raise FhirError.bad_request(
            "Expected a transaction Bundle", code="structure", expression="Bundle.type"
        )
    entries = _parse_transaction(bundle.get("entry") or [], structural)
    out = _apply(tx, entries, False, integrity_policy=integrity_policy)
    tx.flush()
    return _response_bundle(out)


def _batch(
    store: Storage,
    raw_entries: list,
    representation: bool,
    structural: bool,
    base: str,
    origin: str,
    integrity_policy: str,
) -> dict:
    out: list[dict] = []
    with store.begin(origin) as outer:
        for i, raw in enumerate(raw_entries):
            try:
                with outer.savepoint() as tx:
                    e = parse_entry(i, raw, structural)
                    if e.method == "POST" and e.if_none_exist:
                        _resolve_targets(tx, [e])
                    issues = []
                    if e.method in ("POST", "PUT") and isinstance(e.resource, dict) and not e.skip_write:
                        issues = integrity.check_resource(tx, e.resource, integrity_policy, base)
                    result = _execute(tx, e, base)
                out.append(_response(result, representation))
                if issues:
                    _add_warnings(out[-1], issues)
            except FhirError as exc:
                out.append(
                    {
                        "response": {
                            "status": f"{exc.status} {_REASON.get(exc.status, '')}".strip(),
                            "outcome": _fail(i, exc).outcome,
                        }
                    }
                )
            except Exception as exc:  # an entry must never take the rest of the batch down
                out.append(
                    {
                        "response": {
                            "status": "500 Internal Server Error",
                            "outcome": operation_outcome(
                                "error", "exception", f"Bundle.entry[{i}]: {type(exc).__name__}"
                            ),
                        }
                    }
                )
    return {"resourceType": "Bundle", "type": "batch-response", "entry": out}

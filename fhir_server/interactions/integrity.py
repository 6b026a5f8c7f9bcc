"""Referential integrity of writes: every literal reference must point at a resource that exists.

Two rules. Inside a transaction Bundle, a `urn:uuid:`/`urn:oid:` reference that no entry's fullUrl
resolves is always refused (400 naming the entry): nothing can ever resolve it later. A relative
reference (`Patient/123`, also `Patient/123/_history/2`, or an absolute URL on this server's base) to a
resource that neither the Bundle nor the database holds is refused under the `strict` policy and
accepted with a warning under `lenient` (`LIENTHONG_REFERENTIAL_INTEGRITY`).

Cost on the write path: the references are collected during the walk that rewrites fullUrls anyway;
references to the Bundle's own entries are a set lookup; the others are read with one prefetch per
unit of work (adapter Bundles reference their own entries, so ingest pays no extra query).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fhir_server.errors import FhirError, operation_outcome
from fhir_server.storage.base import Key, UnitOfWork
from fhir_server.validation import r4_resource_types

POLICIES = ("strict", "lenient")


def check_policy(policy: str) -> str:
    """The policy name, or ValueError naming the allowed ones."""
    if policy not in POLICIES:
        raise ValueError(f"referential integrity policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    return policy


def references(node: object) -> Iterator[str]:
    """Every `reference` string in a resource (nested elements, contained resources included)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            elif isinstance(value, (dict, list)):
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                yield from references(item)


def path_of(node: object, reference: str, at: str) -> str | None:
    """FHIRPath-like location of the first element holding `reference` (only computed on failure)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and value == reference:
                return at
            if isinstance(value, (dict, list)):
                found = path_of(value, reference, f"{at}.{key}")
                if found:
                    return found
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found = path_of(item, reference, f"{at}[{i}]")
            if found:
                return found
    return None


def target_key(reference: str, base: str = "") -> Key | None:
    """(type, id) a literal reference points at on this server; None for contained/external/logical ones."""
    ref = reference
    if base and ref.startswith(base.rstrip("/") + "/"):
        ref = ref[len(base.rstrip("/")) + 1 :]
    if ref.startswith(("#", "urn:", "http://", "https://")) or "?" in ref:
        return None
    parts = ref.split("/")
    if len(parts) in (2, 4) and parts[0] in r4_resource_types() and parts[1]:
        if len(parts) == 4 and parts[2] != "_history":
            return None
        return parts[0], parts[1]
    return None


def unresolved_urns(refs: Iterable[str]) -> list[str]:
    """The `urn:uuid:`/`urn:oid:` references left after fullUrl rewriting (they resolve to nothing)."""
    return [r for r in refs if r.startswith(("urn:uuid:", "urn:oid:"))]


def missing(tx: UnitOfWork, keys: set[Key], present: set[Key], deleted: set[Key]) -> set[Key]:
    """Keys that are neither written by this request nor current (non-deleted) in the store."""
    wanted = {k for k in keys if k not in present}
    if not wanted:
        return {k for k in keys if k in deleted}
    tx.prefetch(wanted)
    gone = set()
    for key in wanted:
        current = tx.current(*key)
        if current is None or current.deleted:
            gone.add(key)
    return gone | {k for k in keys if k in deleted}


def dangling_issue(reference: str, path: str | None) -> dict:
    """OperationOutcome issue for a reference to a resource that does not exist."""
    issue: dict = {
        "code": "not-found",
        "diagnostics": (
            f"Tham chiếu {reference!r} trỏ tới tài nguyên không tồn tại "
            f"(reference to a resource that does not exist)"
        ),
    }
    if path:
        issue["expression"] = [path]
    return issue


def check_resource(
    tx: UnitOfWork, resource: dict, policy: str, base: str = "", present: set[Key] | None = None
) -> list[dict]:
    """Check one resource written outside a Bundle: raise (strict) or return warning issues (lenient)."""
    refs = list(references(resource))
    res_type = str(resource.get("resourceType", "Resource"))
    keys: dict[Key, str] = {}
    problems: list[tuple[str, str | None]] = []
    for ref in refs:
        if ref.startswith(("urn:uuid:", "urn:oid:")):
            problems.append((ref, path_of(resource, ref, res_type)))
            continue
        key = target_key(ref, base)
        if key is not None:
            keys.setdefault(key, ref)
    own = (res_type, str(resource.get("id"))) if resource.get("id") else None
    gone = missing(tx, set(keys), (present or set()) | ({own} if own else set()), set())
    problems += [(keys[k], path_of(resource, keys[k], res_type)) for k in sorted(gone)]
    return verdict(problems, policy)


def verdict(problems: list[tuple[str, str | None]], policy: str, prefix: str = "") -> list[dict]:
    """Raise 400 under strict with every problem listed; return them as warnings under lenient."""
    if not problems:
        return []
    issues = [dangling_issue(ref, path) for ref, path in problems]
    if policy == "strict":
        for issue in issues:
            issue["severity"] = "error"
            issue["diagnostics"] = prefix + issue["diagnostics"]
        raise FhirError(400, {"resourceType": "OperationOutcome", "issue": issues})
    for issue in issues:
        issue["severity"] = "warning"
    return issues


def outcome_of(issues: list[dict]) -> dict | None:
    """Warnings as an OperationOutcome (None when there are none)."""
    if not issues:
        return None
    out = operation_outcome("warning", "informational", "")
    out["issue"] = issues
    return out

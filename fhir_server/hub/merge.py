"""Merge node answers into one Bundle: every entry says which node it came from, copies of the same
record are collapsed, one person's records at several hospitals become one Patient entry (identity
matcher), and nodes that did not answer are named in an OperationOutcome entry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from fhir_server.hub.client import NodeFailure
from fhir_server.hub.config import NodeConfig
from fhir_server.identity.features import extract
from fhir_server.identity.linker import link_records
from fhir_server.identity.scorer import Matcher, default_matcher
from fhir_server.storage.base import content_hash
from fhir_server.timeutil import instant, now_us

ORIGIN_SYSTEM = "http://lienthong.vn/fhir/CodeSystem/hub-node"

# Per failure kind: the OperationOutcome issue code and the sentence (Vietnamese first, then English).
_FAILURE = {
    "timeout": (
        "timeout",
        "Nút {node} không trả lời trong {timeout:g} giây: kết quả thiếu dữ liệu của nút này "
        "(node {node} did not answer within {timeout:g} s; results are incomplete)",
    ),
    "down": (
        "transient",
        "Không kết nối được nút {node}: kết quả thiếu dữ liệu của nút này "
        "(node {node} is unreachable: {detail}; results are incomplete)",
    ),
    "refused": (
        "forbidden",
        "Nút {node} từ chối yêu cầu của trung tâm: kết quả thiếu dữ liệu của nút này "
        "(node {node} refused the hub's request: {detail}; results are incomplete)",
    ),
    "error": (
        "exception",
        "Nút {node} trả lỗi: kết quả thiếu dữ liệu của nút này "
        "(node {node} answered with an error: {detail}; results are incomplete)",
    ),
}


@dataclass
class NodeAnswer:
    """The Bundle entries one node returned (in its order)."""

    node: NodeConfig
    entries: list[dict] = field(default_factory=list)
    truncated: bool = False  # the node had more pages than the hub reads


def _key(resource: dict) -> tuple[str, str]:
    return resource.get("resourceType", ""), str(resource.get("id", ""))


def _origin_tag(node: NodeConfig) -> dict:
    return {"system": ORIGIN_SYSTEM, "code": node.name, "display": node.base_url}


def tag_entry(entry: dict, node: NodeConfig) -> dict | None:
    """The entry with an absolute fullUrl on its node and the node named in meta.tag (and meta.source
    when the node set none); None for entries without a resource (e.g. a node's own outcome entry)."""
    resource = entry.get("resource")
    if not isinstance(resource, dict) or "resourceType" not in resource:
        return None
    meta = resource.setdefault("meta", {})
    meta.setdefault("source", node.base_url)
    meta["tag"] = [*(meta.get("tag") or []), _origin_tag(node)]
    res_type, res_id = _key(resource)
    out = {"fullUrl": node.url(f"{res_type}/{res_id}"), "resource": resource}
    if "search" in entry:
        out["search"] = entry["search"]
    return out


def _same_content(a: dict, b: dict) -> bool:
    """Equal ignoring server-managed meta and the hub's own origin tags."""

    def strip(r: dict) -> dict:
        meta = {k: v for k, v in (r.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
        meta.pop("source", None)
        meta["tag"] = [t for t in meta.get("tag") or [] if t.get("system") != ORIGIN_SYSTEM]
        if not meta["tag"]:
            meta.pop("tag")
        body = {k: v for k, v in r.items() if k != "meta"}
        if meta:
            body["meta"] = meta
        return body

    return content_hash(strip(a)) == content_hash(strip(b))


def _collapse_copies(entries: list[dict]) -> list[dict]:
    """The same record (type, id, content) held by several nodes: one entry naming every node."""
    kept: dict[tuple[str, str], list[dict]] = {}
    out: list[dict] = []
    for e in entries:
        key = _key(e["resource"])
        twins = kept.setdefault(key, [])
        twin = next((t for t in twins if _same_content(t["resource"], e["resource"])), None)
        if twin is None:
            twins.append(e)
            out.append(e)
            continue
        tags = twin["resource"]["meta"]["tag"]
        tags += [
            t for t in e["resource"]["meta"]["tag"] if t.get("system") == ORIGIN_SYSTEM and t not in tags
        ]
        if e.get("search", {}).get("mode") == "match":
            twin["search"] = {**twin.get("search", {}), **e["search"]}
    return out


def collapse_patients(entries: list[dict], matcher: Matcher | None = None) -> tuple[list[dict], int]:
    """Patient entries of the same person (identity matcher: shared CCCD/BHYT, or demographics above the
    match threshold) become one entry, the first in node order, whose `link` points (seealso) at the
    others; returns (entries, number of Patient entries folded into another)."""
    matcher = matcher or default_matcher()
    patients = [i for i, e in enumerate(entries) if e["resource"].get("resourceType") == "Patient"]
    if len(patients) < 2:
        return entries, 0
    features = []
    for i in patients:
        f = extract(entries[i]["resource"])
        f.id = str(i)
        features.append(f)
    result = link_records(features, matcher)
    drop: set[int] = set()
    for group in result.link_sets:
        members = sorted(int(x) for x in group)
        primary = entries[members[0]]
        res = primary["resource"]
        links = list(res.get("link") or [])
        for j in members[1:]:
            other = entries[j]
            node_tag = next(
                (t for t in other["resource"]["meta"]["tag"] if t.get("system") == ORIGIN_SYSTEM), {}
            )
            links.append(
                {"other": {"reference": other["fullUrl"], "display": node_tag.get("code")}, "type": "seealso"}
            )
            score = (other.get("search") or {}).get("score")
            if score is not None and score > (primary.get("search") or {}).get("score", -1):
                primary["search"] = {**primary.get("search", {}), "score": score}
            drop.add(j)
        res["link"] = links
    return [e for i, e in enumerate(entries) if i not in drop], len(drop)


def failure_outcome(failures: list[tuple[NodeFailure, NodeConfig]], truncated: list[str]) -> dict | None:
    """One OperationOutcome naming every node whose data is missing (or cut short) from the answer."""
    issues = []
    for failure, node in failures:
        code, text = _FAILURE.get(failure.kind, _FAILURE["error"])
        issues.append(
            {
                "severity": "warning",
                "code": code,
                "details": {
                    "coding": [{"system": ORIGIN_SYSTEM, "code": node.name, "display": node.base_url}],
                    "text": failure.kind,
                },
                "diagnostics": text.format(node=node.name, timeout=node.timeout, detail=failure.detail),
            }
        )
    for name in truncated:
        issues.append(
            {
                "severity": "information",
                "code": "incomplete",
                "details": {"coding": [{"system": ORIGIN_SYSTEM, "code": name}], "text": "truncated"},
                "diagnostics": f"Nút {name} còn kết quả chưa được lấy (node {name} has more results than "
                "the hub reads per query)",
            }
        )
    return {"resourceType": "OperationOutcome", "issue": issues} if issues else None


def merged_bundle(
    answers: list[NodeAnswer],
    failures: list[tuple[NodeFailure, NodeConfig]],
    *,
    self_url: str,
    collapse: bool = True,
    sort_by_score: bool = False,
) -> dict:
    """One searchset Bundle over every node's answer; `total` counts the match entries after collapse."""
    entries = [t for a in answers for e in a.entries if (t := tag_entry(e, a.node)) is not None]
    entries = _collapse_copies(entries)
    folded = 0
    if collapse:
        entries, folded = collapse_patients(entries)
    if sort_by_score:
        entries.sort(key=lambda e: -float((e.get("search") or {}).get("score", 0)))
    total = sum(1 for e in entries if (e.get("search") or {}).get("mode", "match") == "match")
    outcome = failure_outcome(failures, [a.node.name for a in answers if a.truncated])
    if outcome is not None:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(now_us())},
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    }
    if folded:
        bundle["meta"]["tag"] = [
            {"system": ORIGIN_SYSTEM, "code": "patients-collapsed", "display": f"{folded} record(s) folded"}
        ]
    return bundle

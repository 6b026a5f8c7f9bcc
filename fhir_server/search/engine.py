"""Search execution: filters -> SQL over the index tables, keyset paging, includes, searchset Bundles.

Bundles are assembled from the stored JSON bytes without re-parsing them (unless _summary/_elements
asks for a trimmed copy).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import orjson
from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from fhir_server.errors import FhirError, operation_outcome
from fhir_server.search.conditions import TOP, Conditions, Unknown
from fhir_server.search.derived import param_clause
from fhir_server.search.query import (
    RESULT_PARAMS,
    Include,
    SearchRequest,
    decode_token,
    encode_token,
    parse_request,
)
from fhir_server.search.registry import COLUMN_PARAMS, NOT_SUPPORTED, Registry, get_registry
from fhir_server.search.shaping import shape
from fhir_server.search.tables import TABLES, sp_reference
from fhir_server.search.values import MAX_US, MIN_US
from fhir_server.storage.schema import resource
from fhir_server.timeutil import instant, now_us

MAX_INCLUDED = 1000
MAX_ITERATE = 4
_AGG = {
    "string": "value",
    "token": "code",
    "uri": "value",
    "reference": "target_id",
    "number": "value",
    "quantity": "value",
}


@dataclass
class Page:
    """One page of matches plus what the links and total need."""

    rows: list  # (rid, res_type, res_id, content, *sort keys)
    included: list  # (res_type, res_id, content)
    next_token: str | None
    prev_token: str | None
    total: int | None
    issues: list[str]


class SearchEngine:
    """Finds current, non-deleted resources matching FHIR search parameters."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or get_registry()
        self._custom_loaded = False
        self._lock = threading.Lock()

    def _ensure_custom(self, conn: Connection) -> None:
        """Register SearchParameter resources stored before this process started (once)."""
        if self._custom_loaded:
            return
        with self._lock:
            if not self._custom_loaded:
                try:
                    self.registry.load_custom(conn)
                finally:
                    self._custom_loaded = True

    # -- conditional interactions ----------------------------------------------------------------
    def find(self, conn: Connection, res_type: str, params: list[tuple[str, str]]) -> list[tuple[int, str]]:
        """Return (rid, id) of matches, for conditional create/update/delete."""
        self._ensure_custom(conn)
        req = parse_request([(k, v) for k, v in params if k.split(":", 1)[0] not in RESULT_PARAMS])
        r = resource.alias("r")
        conds = self._where(r, res_type, req, strict=True, base_url=None)
        rows = conn.execute(select(r.c.rid, r.c.res_id).where(*conds)).all()
        return [(row.rid, row.res_id) for row in rows]

    def capability(self, res_type: str) -> list[dict]:
        """Search parameters supported for a type, for the CapabilityStatement."""
        out = []
        for code, param in sorted(self.registry.params(res_type).items()):
            if code in NOT_SUPPORTED or param.type == "special" or code == "phonetic":
                continue
            if param.type == "composite" and len(param.components) != 2:
                continue
            if not param.expression and code not in COLUMN_PARAMS:
                continue
            entry = {"name": code, "type": param.type, "definition": param.url}
            if param.description:
                entry["documentation"] = param.description
            out.append(entry)
        return out

    # -- search -----------------------------------------------------------------------------------
    def _where(
        self,
        r,
        res_type: str | None,
        req: SearchRequest,
        strict: bool,
        base_url: str | None,
        types: list[str] | None = None,
    ) -> list[ColumnElement]:
        builder = Conditions(self.registry, base_url)
        conds: list[ColumnElement] = [r.c.deleted.is_(False)]
        if res_type is not None:
            conds.append(r.c.res_type == res_type)
        elif types:
            conds.append(r.c.res_type.in_(types))
        for flt in req.filters:
            try:
                conds.append(builder.build(r, res_type, flt))
            except Unknown as exc:
                if strict:
                    raise FhirError.bad_request(str(exc), code="not-supported", expression=flt.name)
                req.issues.append(f"{exc}; it was ignored")
        return conds

    def _sort_keys(self, r, res_type: str | None, req: SearchRequest, strict: bool) -> list[tuple]:
        """(expression, descending, kind) per _sort key; missing values sort last either way."""
        keys = []
        for code, desc in req.sort:
            if code == "_id":
                keys.append((r.c.res_id, desc, "str"))
                continue
            if code == "_lastUpdated":
                keys.append((r.c.last_updated, desc, "int"))
                continue
            param = self.registry.get(res_type, code) if res_type else self.registry.common.get(code)
            if param is None or param.type not in TABLES or param.type == "composite":
                msg = f"cannot sort by {code!r}"
                if strict:
                    raise FhirError.bad_request(msg, code="not-supported", expression="_sort")
                req.issues.append(msg + "; the sort key was ignored")
                continue
            table = TABLES[param.type]
            if param.type == "date":
                col, kind = (table.c.hi if desc else table.c.lo), "int"
                sentinel = MIN_US - 1 if desc else MAX_US + 1
            elif param.type in ("number", "quantity"):
                col, kind = table.c.value, "float"
                sentinel = -1e308 if desc else 1e308
            else:
                col, kind = table.c[_AGG[param.type]], "str"
                sentinel = "" if desc else TOP
            agg = func.max(col) if desc else func.min(col)
            rows = param_clause(table, self.registry, res_type, param.code)
            sub = select(agg).where(table.c.rid == r.c.rid, rows).scalar_subquery()
            keys.append((func.coalesce(sub, literal(sentinel)), desc, kind))
        return keys

    def search(
        self,
        conn: Connection,
        res_type: str | None,
        params: list[tuple[str, str]],
        base_url: str,
        strict: bool = False,
        default_count: int = 50,
        max_count: int = 1000,
    ) -> bytes:
        """Run a type (or system, when res_type is None) search and return the searchset Bundle bytes."""
        self._ensure_custom(conn)
        req = parse_request(params, max_count)
        types = None
        if res_type is None and req.types:
            unknown = [t for t in req.types if t not in self.registry.resource_types]
            if unknown:
                raise FhirError.bad_request(
                    f"unknown resource type(s) in _type: {', '.join(unknown)}", expression="_type"
                )
            types = req.types
            if len(types) == 1:
                res_type, types = types[0], None
        if strict and req.issues:
            raise FhirError.bad_request(req.issues[0], code="not-supported")
        page = self._page(conn, res_type, types, req, strict, base_url, default_count)
        return self._bundle(res_type, params, req, page, base_url)

    def _page(
        self,
        conn: Connection,
        res_type: str | None,
        types: list[str] | None,
        req: SearchRequest,
        strict: bool,
        base_url: str,
        default_count: int,
    ) -> Page:
        r = resource.alias("r")
        conds = self._where(r, res_type, req, strict, base_url, types)
        count = default_count if req.count is None else req.count
        total: int | None = None
        summary_count = req.summary == "count" or count == 0
        if req.total in ("accurate", "estimate") or summary_count:
            total = conn.execute(select(func.count()).select_from(r).where(*conds)).scalar_one()
        if summary_count:
            return Page([], [], None, None, total, req.issues)

        keys = self._sort_keys(r, res_type, req, strict)
        direction = "n"
        if req.page_token:
            values, last_rid, direction = decode_token(req.page_token)
            if len(values) != len(keys):
                raise FhirError.bad_request(
                    "_page_token does not match this search's _sort", expression="_page_token"
                )
            conds.append(_after(keys, values, r.c.rid, last_rid, backwards=direction == "p"))
        backwards = direction == "p"
        order = []
        for expr, desc, _ in keys:
            order.append(expr.desc() if desc != backwards else expr.asc())
        order.append(r.c.rid.desc() if backwards else r.c.rid.asc())
        cols = [r.c.rid, r.c.res_type, r.c.res_id, r.c.content] + [k[0] for k in keys]
        rows = conn.execute(select(*cols).where(*conds).order_by(*order).limit(count + 1)).all()
        more = len(rows) > count
        rows = list(rows[:count])
        if backwards:
            rows.reverse()
        next_token = prev_token = None
        if rows:
            first, last = rows[0], rows[-1]
            if (more and not backwards) or (backwards and req.page_token):
                next_token = encode_token(_key_values(last, len(keys)), last.rid, "n")
            if (more and backwards) or (not backwards and req.page_token):
                prev_token = encode_token(_key_values(first, len(keys)), first.rid, "p")
        if total is None and not req.page_token and not more and req.total != "none":
            total = len(rows)  # cheap: the whole result fits on the first page
        included = self._includes(conn, rows, req) if req.includes and rows else []
        return Page(rows, included, next_token, prev_token, total, req.issues)

    # -- _include / _revinclude -------------------------------------------------------------------
    def _includes(self, conn: Connection, rows: list, req: SearchRequest) -> list[tuple[str, str, bytes]]:
        seen = {(row.res_type, row.res_id) for row in rows}
        frontier = [(row.rid, row.res_type, row.res_id) for row in rows]
        out: list[tuple[str, str, bytes]] = []
        for depth in range(MAX_ITERATE):
            specs = [inc for inc in req.includes if depth == 0 or inc.iterate]
            if not specs or not frontier:
                break
            found: list[tuple[int, str, str, bytes]] = []
            for inc in specs:
                found += (
                    self._revinclude(conn, frontier, inc)
                    if inc.reverse
                    else self._include(conn, frontier, inc)
                )
            frontier = []
            for rid, rtype, rid_str, content in found:
                if (rtype, rid_str) in seen or len(out) >= MAX_INCLUDED:
                    continue
                seen.add((rtype, rid_str))
                out.append((rtype, rid_str, content))
                frontier.append((rid, rtype, rid_str))
        return out

    def _include(self, conn: Connection, frontier: list, inc: Include) -> list:
        rids = [rid for rid, rtype, _ in frontier if inc.source in ("*", rtype)]
        if not rids:
            return []
        ref = sp_reference
        cond = [ref.c.rid.in_(rids), ref.c.url.is_(None), ref.c.target_id.is_not(None)]
        if inc.param != "*":
            source = None if inc.source == "*" else inc.source
            cond.append(param_clause(ref, self.registry, source, inc.param))
        if inc.target:
            cond.append(ref.c.target_type == inc.target)
        targets = {(t, i) for t, i in conn.execute(select(ref.c.target_type, ref.c.target_id).where(*cond))}
        by_type: dict[str, list[str]] = {}
        for t, i in targets:
            by_type.setdefault(t, []).append(i)
        found = []
        for t, ids in by_type.items():
            stmt = select(resource.c.rid, resource.c.res_type, resource.c.res_id, resource.c.content).where(
                resource.c.res_type == t,
                resource.c.res_id.in_(ids[:MAX_INCLUDED]),
                resource.c.deleted.is_(False),
            )
            found += [tuple(row) for row in conn.execute(stmt)]
        return found

    def _revinclude(self, conn: Connection, frontier: list, inc: Include) -> list:
        by_type: dict[str, list[str]] = {}
        for _, rtype, rid_str in frontier:
            if inc.target in (None, rtype):
                by_type.setdefault(rtype, []).append(rid_str)
        ref = sp_reference
        found = []
        for t, ids in by_type.items():
            cond = [ref.c.target_type == t, ref.c.target_id.in_(ids), ref.c.url.is_(None)]
            if inc.source != "*":
                cond.append(ref.c.res_type == inc.source)
            if inc.param != "*":
                source = None if inc.source == "*" else inc.source
                cond.append(param_clause(ref, self.registry, source, inc.param))
            sub = select(ref.c.rid).where(*cond)
            stmt = (
                select(resource.c.rid, resource.c.res_type, resource.c.res_id, resource.c.content)
                .where(resource.c.rid.in_(sub), resource.c.deleted.is_(False))
                .limit(MAX_INCLUDED)
            )
            found += [tuple(row) for row in conn.execute(stmt)]
        return found

    # -- Bundle -----------------------------------------------------------------------------------
    def _bundle(
        self,
        res_type: str | None,
        params: list[tuple[str, str]],
        req: SearchRequest,
        page: Page,
        base_url: str,
    ) -> bytes:
        base = base_url.rstrip("/")
        path = f"{base}/{res_type}" if res_type else base
        keep = [(k, v) for k, v in params if k != "_page_token"]

        def link(relation: str, token: str | None) -> dict:
            query = keep + ([("_page_token", token)] if token else [])
            return {"relation": relation, "url": path + ("?" + urlencode(query) if query else "")}

        links = [link("self", req.page_token)]
        if page.next_token:
            links.append(link("next", page.next_token))
        if page.prev_token:
            links.append(link("previous", page.prev_token))
        head: dict = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": instant(now_us())},
            "type": "searchset",
        }
        if page.total is not None:
            head["total"] = page.total
        head["link"] = links
        shaped = req.summary in ("true", "text", "data") or bool(req.elements)
        entries: list[bytes] = []
        for row in page.rows:
            entries.append(_entry(base, row.res_type, row.res_id, row.content, b"match", shaped, req))
        for rtype, rid_str, content in page.included:
            entries.append(_entry(base, rtype, rid_str, content, b"include", shaped, req))
        if page.issues:
            outcome = operation_outcome("warning", "not-supported", page.issues[0])
            outcome["issue"] += [
                {"severity": "warning", "code": "not-supported", "diagnostics": m} for m in page.issues[1:]
            ]
            entries.append(b'{"resource":' + orjson.dumps(outcome) + b',"search":{"mode":"outcome"}}')
        body = orjson.dumps(head)
        if not entries:
            return body
        return body[:-1] + b',"entry":[' + b",".join(entries) + b"]}"


def _entry(
    base: str, rtype: str, rid_str: str, content: bytes, mode: bytes, shaped: bool, req: SearchRequest
) -> bytes:
    if shaped:
        content = orjson.dumps(shape(orjson.loads(content), req.summary, req.elements))
    return (
        b'{"fullUrl":'
        + orjson.dumps(f"{base}/{rtype}/{rid_str}")
        + b',"resource":'
        + bytes(content)
        + b',"search":{"mode":"'
        + mode
        + b'"}}'
    )


def _key_values(row, n: int) -> list:
    return [row[4 + i] for i in range(n)]


def _after(keys: list[tuple], values: list, rid_col, last_rid: int, backwards: bool) -> ColumnElement:
    """Keyset condition: rows strictly after (or before) the boundary row in the sort order."""
    clauses = []
    prefix: list[ColumnElement] = []
    for (expr, desc, _), value in zip(keys, values, strict=True):
        forward_gt = desc == backwards  # ascending key read forwards -> '>'
        clauses.append(and_(*prefix, expr > value if forward_gt else expr < value))
        prefix.append(expr == value)
    clauses.append(and_(*prefix, rid_col < last_rid if backwards else rid_col > last_rid))
    return or_(*clauses)

"""Search execution over the index tables: filters -> SQL, keyset paging, _include/_revinclude.

Returns `search.page.Page` objects of stored JSON bytes; the searchset Bundle is built above storage
(`fhir_server/search/bundle.py`), so this module never serializes anything.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Select, and_, func, literal, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from fhir_server.errors import FhirError
from fhir_server.search.page import Hit, Page
from fhir_server.search.query import (
    RESULT_PARAMS,
    Include,
    SearchRequest,
    decode_token,
    encode_token,
    parse_request,
)
from fhir_server.search.registry import Registry
from fhir_server.search.values import MAX_US, MIN_US
from fhir_server.storage.sql.conditions import TOP, Conditions, Unknown, param_clause
from fhir_server.storage.sql.index_tables import TABLES, sp_reference
from fhir_server.storage.sql.schema import resource
from fhir_server.storage.sql.templates import Shape, Template, TemplateCache, compile_template, shape_of

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


class SqlSearch:
    """Finds current, non-deleted resources matching FHIR search parameters, in SQL."""

    def __init__(self, registry: Registry, use_templates: bool = True) -> None:
        self.registry = registry
        # issue 20: compiled statements per search shape; off = every search through SQLAlchemy (A/B).
        self.use_templates = use_templates
        self.templates = TemplateCache()

    def find(self, conn: Connection, res_type: str, params: list[tuple[str, str]]) -> list[str]:
        """Ids of matches, for conditional create/update/delete/patch (unknown parameters refused)."""
        req = parse_request([(k, v) for k, v in params if k.split(":", 1)[0] not in RESULT_PARAMS])
        r = resource.alias("r")
        conds = self._where(r, res_type, req, strict=True, base_url=None)
        return [
            row.res_id for row in conn.execute(select(r.c.rid, r.c.res_id).where(*conds).order_by(r.c.rid))
        ]

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
                    raise FhirError.bad_request(exc.args[0], code="not-supported", expression=flt.name)
                req.issues.append(f"{exc}; it was ignored")
                req.ignored.append(flt.name)
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
            sentinel: int | float | str
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

    def page(
        self,
        conn: Connection,
        res_type: str | None,
        req: SearchRequest,
        base_url: str,
        strict: bool = False,
        default_count: int = 50,
        types: list[str] | None = None,
    ) -> Page:
        """One page of a type search (or a system search over `types`, or every type when None)."""
        count = default_count if req.count is None else req.count
        summary_count = req.summary == "count" or count == 0
        want_total = req.total in ("accurate", "estimate") or summary_count
        token = _try_decode(req.page_token) if req.page_token and not summary_count else None
        run = None
        if token is not None or not req.page_token or summary_count:
            run = self._templated(conn, res_type, req, base_url, strict, count, token)
        if run is None:
            run = self._general(conn, res_type, req, base_url, strict, count, types)
        count_rows, page_rows = run
        total: int | None = count_rows() if want_total else None
        if summary_count:
            return Page([], [], None, None, total, req.issues)
        found, nkeys = page_rows()
        backwards = req.page_token is not None and decode_token(req.page_token)[2] == "p"
        more = len(found) > count
        rows = [Hit(r[0], r[1], r[2], r[3], tuple(r[4:])) for r in found[:count]]
        if backwards:
            rows.reverse()
        next_token = prev_token = None
        if rows:
            first, last = rows[0], rows[-1]
            if (more and not backwards) or (backwards and req.page_token):
                next_token = encode_token(_key_values(last, nkeys), last.rid, "n")
            if (more and backwards) or (not backwards and req.page_token):
                prev_token = encode_token(_key_values(first, nkeys), first.rid, "p")
        if total is None and not req.page_token and not more and req.total != "none":
            total = len(rows)  # cheap: the whole result fits on the first page
        included = self._includes(conn, rows, req) if req.includes and rows else []
        return Page(rows, included, next_token, prev_token, total, req.issues)

    def _general(
        self,
        conn: Connection,
        res_type: str | None,
        req: SearchRequest,
        base_url: str,
        strict: bool,
        count: int,
        types: list[str] | None,
    ) -> tuple[Callable[[], int], Callable[[], tuple[list, int]]]:
        """Statements built and run through SQLAlchemy (every shape)."""
        r = resource.alias("r")
        conds = self._where(r, res_type, req, strict, base_url, types)

        def page_rows() -> tuple[list, int]:
            token = decode_token(req.page_token) if req.page_token else None
            # Built only when a page is wanted: _summary=count never judges _sort (as before).
            stmt, nkeys = self._page_statement(r, res_type, req, conds, base_url, strict, count, token)
            return list(conn.execute(stmt).all()), nkeys

        return lambda: conn.execute(_count_statement(r, conds)).scalar_one(), page_rows

    def _templated(
        self,
        conn: Connection,
        res_type: str | None,
        req: SearchRequest,
        base_url: str,
        strict: bool,
        count: int,
        token: tuple[list, int, str] | None,
    ) -> tuple[Callable[[], int], Callable[[], tuple[list, int]]] | None:
        """The same statements compiled once per shape and run as driver SQL (None: not templatable)."""
        if not self.use_templates:
            return None
        shape = shape_of(self.registry, res_type, req, base_url, token)
        if shape is None:
            return None
        key = (*shape.key, count, strict, conn.dialect.name, self.templates.generation)
        entry = self.templates.get(key)
        if entry is None:
            entry = self._compile_shape(conn, res_type, shape, base_url, strict, count)
            self.templates.put(key, entry)
        if entry is False:
            return None
        count_t, main_t, nkeys = entry
        values = shape.values
        return (
            lambda: conn.exec_driver_sql(count_t.sql, count_t.params(values)).scalar_one(),
            lambda: (list(conn.exec_driver_sql(main_t.sql, main_t.params(values)).all()), nkeys),
        )

    def _compile_shape(
        self, conn: Connection, res_type: str | None, shape: Shape, base_url: str, strict: bool, count: int
    ) -> tuple[Template, Template, int] | bool:
        """Build a shape's statements from its sentinel request and compile them (False: cannot)."""
        sample = shape.sample
        r = resource.alias("r")
        try:
            conds = self._where(r, res_type, sample, strict, base_url)
            count_stmt = _count_statement(r, conds)
            main_stmt, nkeys = self._page_statement(
                r, res_type, sample, conds, base_url, strict, count, shape.token
            )
        except FhirError:
            return False  # the general path raises it with the real values
        if sample.issues or sample.ignored:
            return False
        n = len(shape.values)
        n_filter = n - (len(shape.token[0]) + 1 if shape.token is not None else 0)
        count_t = compile_template(count_stmt, conn.dialect, n_filter)
        main_t = compile_template(main_stmt, conn.dialect, n)
        if count_t is None or main_t is None:
            return False
        return count_t, main_t, nkeys

    def _page_statement(
        self,
        r,
        res_type: str | None,
        req: SearchRequest,
        conds: list,
        base_url: str,
        strict: bool,
        count: int,
        token: tuple[list, int, str] | None,
    ) -> tuple[Select, int]:
        """The page's statement (count + 1 rows in sort order after the token) and its key count."""
        conds = list(conds)
        keys = self._sort_keys(r, res_type, req, strict)
        after: int | None = None
        backwards = False
        if token is not None:
            values, last_rid, direction = token
            after = last_rid
            backwards = direction == "p"
            if len(values) != len(keys):
                raise FhirError.bad_request(
                    "_page_token does not match this search's _sort", expression="_page_token"
                )
            conds.append(_after(keys, values, r.c.rid, last_rid, backwards=backwards))
        if not keys and res_type is not None:
            conds = self._narrowed(r, res_type, req, conds, count + 1, after, backwards, base_url)
        order = []
        for expr, desc, _ in keys:
            order.append(expr.desc() if desc != backwards else expr.asc())
        order.append(r.c.rid.desc() if backwards else r.c.rid.asc())
        cols = [r.c.rid, r.c.res_type, r.c.res_id, r.c.content] + [k[0] for k in keys]
        return select(*cols).where(*conds).order_by(*order).limit(count + 1), len(keys)

    def _narrowed(
        self,
        r,
        res_type: str,
        req: SearchRequest,
        conds: list,
        limit: int,
        after: int | None,
        backwards: bool,
        base_url: str,
    ) -> list:
        """One plain criterion in rid order: take the page's rids from the index table alone, then join.

        `rid IN (all matches) ORDER BY rid LIMIT n` visits every match's resource row (1,996 for
        `name=nguyen van` among 100,000 patients); ordering and limiting the index rows first lets
        PostgreSQL either gather a rare prefix from the value index or walk rids until the page is full
        for a common one, and fetch only the page's resources (issue 20)."""
        if len(req.filters) != 1 or req.ignored:
            return conds
        lookup = Conditions(self.registry, base_url).index_lookup(res_type, req.filters[0])
        if lookup is None:
            return conds
        table, sub = lookup
        if after is not None:
            sub = sub.where(table.c.rid < after if backwards else table.c.rid > after)
        rid = table.c.rid.desc() if backwards else table.c.rid.asc()
        first = sub.distinct().order_by(rid).limit(limit).subquery()
        return [*conds[:2], r.c.rid.in_(select(first.c.rid))]

    # -- _include / _revinclude -------------------------------------------------------------------
    def _includes(self, conn: Connection, rows: list[Hit], req: SearchRequest) -> list[Hit]:
        seen = {(row.res_type, row.res_id) for row in rows}
        frontier = [(row.rid, row.res_type, row.res_id) for row in rows]
        out: list[Hit] = []
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
                out.append(Hit(rid, rtype, rid_str, content))
                frontier.append((rid, rtype, rid_str))
        return out

    def _include(self, conn: Connection, frontier: list, inc: Include) -> list:
        rids = [rid for rid, rtype, _ in frontier if inc.source in ("*", rtype)]
        if not rids:
            return []
        ref = sp_reference
        cond: list[ColumnElement] = [ref.c.rid.in_(rids), ref.c.url.is_(None), ref.c.target_id.is_not(None)]
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
            cond: list[ColumnElement] = [
                ref.c.target_type == t,
                ref.c.target_id.in_(ids),
                ref.c.url.is_(None),
            ]
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


def _try_decode(page_token: str) -> tuple[list, int, str] | None:
    try:
        return decode_token(page_token)
    except FhirError:
        return None


def _count_statement(r, conds: list) -> Select:
    return select(func.count()).select_from(r).where(*conds)


def _key_values(row: Hit, n: int) -> list:
    return list(row.keys[:n])


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

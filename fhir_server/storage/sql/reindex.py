"""Rebuild search index rows from stored resources (after adding SearchParameters, or after a bulk load
that deferred indexing), in batches of one transaction each."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from sqlalchemy import Engine, and_, delete, select
from sqlalchemy.sql import ColumnElement

from fhir_server.search.indexer import Indexer
from fhir_server.storage.sql.index_tables import ALL_TABLES, TABLES
from fhir_server.storage.sql.rows import copy_rows
from fhir_server.storage.sql.schema import resource

BATCH = 500


def reindex(
    engine: Engine,
    indexer: Indexer,
    res_type: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-extract index rows of every current resource (optionally one type); returns resources indexed."""
    cond: list[ColumnElement] = [resource.c.deleted.is_(False)]
    if res_type:
        cond.append(resource.c.res_type == res_type)
    done, last = 0, -1
    while True:
        with engine.connect().execution_options(write=True) as conn, conn.begin():
            rows = conn.execute(
                select(resource.c.rid, resource.c.res_type, resource.c.content)
                .where(and_(*cond, resource.c.rid > last))
                .order_by(resource.c.rid)
                .limit(BATCH)
            ).all()
            if not rows:
                break
            rids = [r.rid for r in rows]
            for table in ALL_TABLES:
                conn.execute(delete(table).where(table.c.rid.in_(rids)))
            batches: dict[str, list[tuple]] = {}
            for row in rows:
                for kind, index_rows in indexer.tuples(
                    row.rid, row.res_type, orjson.loads(row.content)
                ).items():
                    batches.setdefault(kind, []).extend(index_rows)
            for kind, index_rows in batches.items():
                copy_rows(conn, TABLES[kind], index_rows)
        done += len(rows)
        last = rows[-1].rid
        if progress is not None:
            progress(len(rows))
    return done

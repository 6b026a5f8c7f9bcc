"""`lienthong reindex`: rebuild search index rows from stored resources (after adding SearchParameters
or after a bulk load that deferred indexing)."""

from __future__ import annotations

import typer
from sqlalchemy import and_, delete, func, select

from fhir_server.storage.schema import resource

BATCH = 500


def reindex(store, res_type: str | None = None, progress=None) -> int:
    """Re-extract index rows of every current resource (optionally one type); returns resources indexed."""
    import orjson

    from fhir_server.storage.store import copy_rows

    indexer = store.indexer
    with store.engine.connect() as conn:
        indexer.registry.load_custom(conn)
    cond = [resource.c.deleted.is_(False)]
    if res_type:
        cond.append(resource.c.res_type == res_type)
    done, last = 0, -1
    while True:
        with store.engine.connect().execution_options(write=True) as conn, conn.begin():
            rows = conn.execute(
                select(resource.c.rid, resource.c.res_type, resource.c.content)
                .where(and_(*cond, resource.c.rid > last))
                .order_by(resource.c.rid)
                .limit(BATCH)
            ).all()
            if not rows:
                break
            rids = [r.rid for r in rows]
            for table in indexer.tables:
                conn.execute(delete(table).where(table.c.rid.in_(rids)))
            batches: dict = {}
            for row in rows:
                for table, index_rows in indexer.tuples(
                    row.rid, row.res_type, orjson.loads(row.content)
                ).items():
                    batches.setdefault(table, []).extend(index_rows)
            for table, index_rows in batches.items():
                copy_rows(conn, table, index_rows)
        done += len(rows)
        last = rows[-1].rid
        if progress is not None:
            progress(len(rows))
    return done


def register(app: typer.Typer) -> None:
    """Add the `reindex` command to the lienthong CLI."""

    @app.command("reindex")
    def reindex_cmd(
        db: str = typer.Option(None, "--db", help="Database URL (env LIENTHONG_DATABASE_URL)"),
        res_type: str = typer.Option(None, "--type", help="Only this resource type"),
    ) -> None:
        """Rebuild the search index (e.g. after POSTing SearchParameter resources or a deferred bulk load)."""
        from rich.progress import Progress

        from fhir_server.config import Settings
        from fhir_server.storage.store import open_store

        settings = Settings.from_env().with_(database_url=db)
        store = open_store(settings.database_url)
        cond = [resource.c.deleted.is_(False)] + ([resource.c.res_type == res_type] if res_type else [])
        with store.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(resource).where(and_(*cond))).scalar_one()
        with Progress() as bar:
            task = bar.add_task("reindexing", total=total)
            count = reindex(store, res_type, progress=lambda n: bar.advance(task, n))
        typer.echo(f"reindexed {count} resources")

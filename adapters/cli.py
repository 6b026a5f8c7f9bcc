"""CLI commands of the adapter framework: ingest, replay, adapters, watch, synth (added to `lienthong`)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fhir_server.settings import Settings

console = Console()


def _settings(db: str | None) -> Settings:
    """--db flag, else LIENTHONG_DATABASE_URL, else ./lienthong.db."""
    return Settings.from_env().with_(database_url=db)


def _files(paths: list[Path]) -> list[Path]:
    """Expand folders (recursively, *.xml/*.hl7/*.txt and others, hidden files skipped)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and not f.name.startswith(".")
                and f.suffix.lower() not in (".csv", ".md", ".json")
            )
        elif p.is_file():
            out.append(p)
        else:
            console.print(f"[red]not found:[/red] {p}")
    return out


def _options(vendor: str | None, profile_set: str | None) -> dict:
    """Adapter options from CLI flags."""
    return {k: v for k, v in (("vendor", vendor), ("profile_set", profile_set)) if v}


def _enqueue_files(runtime, files: list[Path], adapter: str | None, options: dict, batch: int) -> None:
    """Broker mode of `ingest`: archive each batch of files and publish it; workers do the rest."""
    import asyncio

    from adapters.broker import enqueue, publisher

    async def main() -> tuple[int, int]:
        queued = unpublished = 0
        for i in range(0, len(files), max(1, batch)):
            chunk = files[i : i + max(1, batch)]
            out = await enqueue(
                runtime.store,
                runtime.settings,
                [(f.read_bytes(), f"file:{f}") for f in chunk],
                adapter,
                None,
                options,
            )
            queued += len(out)
            unpublished += sum(1 for _i, ok in out if not ok)
        from adapters.broker import BrokerConfig

        await publisher(BrokerConfig.from_settings(runtime.settings)).close()
        return queued, unpublished

    queued, unpublished = asyncio.run(main())
    console.print(
        f"{queued} file(s) archived and queued for the workers ({unpublished} waiting for the broker)"
    )


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add the adapter commands to the main Typer app; `open_runtime(settings)` opens a wired store."""

    @app.command("ingest")
    def ingest_cmd(
        paths: list[Path] = typer.Argument(..., help="files or folders to ingest"),
        adapter: str = typer.Option(None, "--adapter", "-a", help="adapter name (default: detect)"),
        vendor: str = typer.Option(None, help="QĐ130 vendor profile (vnpt, viettel, vietsens, auto)"),
        profile_set: str = typer.Option(None, "--profile-set", help="hl7vn | ehealth"),
        db: str = typer.Option(None, "--db", help="database URL"),
        batch: int = typer.Option(50, help="files per group commit (1 = commit each file alone)"),
        broker: str = typer.Option(
            None, "--broker", help="archive and queue the files on this NATS JetStream for `lienthong worker`"
        ),
    ) -> None:
        """Ingest files/folders through the adapters; prints a per-file summary table."""
        from adapters.pipeline import ingest_many

        runtime = open_runtime(_settings(db).with_(broker_url=broker))
        store = runtime.store
        files = _files(paths)
        if broker:
            _enqueue_files(runtime, files, adapter, _options(vendor, profile_set), batch)
            return
        table = Table(title="Ingest summary")
        for col in ("file", "status", "accepted", "rejected", "first error"):
            table.add_column(col)
        totals = {"accepted": 0, "rejected": 0}
        start = time.perf_counter()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("ingesting", total=len(files))
            for i in range(0, len(files), max(1, batch)):
                chunk = files[i : i + max(1, batch)]
                results = ingest_many(
                    store,
                    [(f.read_bytes(), f"file:{f}") for f in chunk],
                    adapter=adapter,
                    options=_options(vendor, profile_set),
                    settings=runtime.settings,
                )
                for f, res in zip(chunk, results):
                    totals["accepted"] += res.accepted
                    totals["rejected"] += res.rejected
                    if res.status != "processed" or len(files) <= 50:
                        errs = res.errors or [e for r in res.records for e in r.errors]
                        first = f"{errs[0]['location']}: {errs[0]['reason']}"[:80] if errs else ""
                        table.add_row(f.name, res.status, str(res.accepted), str(res.rejected), first)
                progress.advance(task, len(chunk))
        console.print(table)
        dt = time.perf_counter() - start
        console.print(
            f"{len(files)} file(s), {totals['accepted']} record(s) accepted, {totals['rejected']} rejected "
            f"in {dt:.1f}s"
        )
        if totals["rejected"]:
            raise typer.Exit(code=1)

    @app.command("replay")
    def replay_cmd(
        dl_id: int = typer.Argument(None, help="dead-letter id (default: all open)"),
        db: str = typer.Option(None, "--db", help="database URL"),
    ) -> None:
        """Re-run dead letters through their adapter after a mapping fix."""
        from adapters.pipeline import replay

        runtime = open_runtime(_settings(db))
        outcomes = replay(runtime.store, dl_id, settings=runtime.settings)
        table = Table(title="Replay")
        table.add_column("dead letter")
        table.add_column("status")
        for o in outcomes:
            table.add_row(str(o["dead_letter_id"]), o["status"])
        console.print(table)
        if any(o["status"] != "replayed" for o in outcomes):
            raise typer.Exit(code=1)

    @app.command("conceptmaps")
    def conceptmaps_cmd(
        db: str = typer.Option(None, "--db", help="database URL"),
        profile_set: str = typer.Option("hl7vn", "--profile-set", help="hl7vn | ehealth"),
    ) -> None:
        """Load the QĐ130 code maps (mappings/qd130) into the server as ConceptMap resources."""
        from adapters.qd130.conceptmaps import qd130_conceptmap_bundle
        from fhir_server.interactions.bundles import transaction

        out = transaction(open_runtime(_settings(db)).store, qd130_conceptmap_bundle(profile_set))
        console.print(f"{len(out['entry'])} ConceptMap(s) loaded; browse them at [base]/ConceptMap")

    @app.command("adapters")
    def adapters_cmd() -> None:
        """List installed input adapters (and plug-ins that failed to load)."""
        from adapters.registry import adapters, broken_adapters

        table = Table(title="Adapters (entry-point group lienthong.adapters)")
        for col in ("name", "channel", "status", "description"):
            table.add_column(col)
        for name, ad in sorted(adapters().items()):
            table.add_row(name, ad.channel, "ok", ad.description)
        for name, why in sorted(broken_adapters().items()):
            table.add_row(name, "-", "[red]failed[/red]", why)
        console.print(table)

    @app.command("watch")
    def watch_cmd(
        folder: Path = typer.Argument(..., help="drop folder"),
        interval: float = typer.Option(2.0, help="poll interval, seconds"),
        once: bool = typer.Option(False, "--once", help="process what is there, then exit"),
        adapter: str = typer.Option(None, "--adapter", "-a"),
        vendor: str = typer.Option(None),
        db: str = typer.Option(None, "--db", help="database URL"),
    ) -> None:
        """Poll a drop folder: ingest each new file, then move it to done/ or failed/."""
        from adapters.pipeline import ingest

        runtime = open_runtime(_settings(db))
        store = runtime.store
        done, failed = folder / "done", folder / "failed"
        done.mkdir(parents=True, exist_ok=True)
        failed.mkdir(parents=True, exist_ok=True)
        console.print(f"watching {folder} (every {interval}s); Ctrl-C to stop")
        try:
            while True:
                for f in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
                    # A file still being written changes size between polls: wait for it to settle.
                    size = f.stat().st_size
                    time.sleep(0.05)
                    if f.stat().st_size != size:
                        continue
                    res = ingest(
                        store,
                        f.read_bytes(),
                        source=f"watch:{f}",
                        adapter=adapter,
                        options=_options(vendor, None),
                        settings=runtime.settings,
                    )
                    target = done if res.status == "processed" else failed
                    shutil.move(str(f), target / f.name)
                    console.print(
                        f"{f.name}: {res.status} ({res.accepted} accepted, {res.rejected} rejected)"
                    )
                if once:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            console.print("stopped")

    @app.command("synth")
    def synth_cmd(
        out: Path = typer.Option(..., "--out", help="output folder"),
        hospitals: int = typer.Option(3, "--hospitals"),
        visits: int = typer.Option(100, "--visits"),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Generate deterministic synthetic QĐ130 envelopes (+ truth.csv ground truth)."""
        from adapters.synth import generate

        ds = generate(hospitals=hospitals, visits=visits, seed=seed)
        paths = ds.write(out)
        console.print(
            f"wrote {len(paths)} envelope(s) for {len(ds.persons)} person(s) across "
            f"{len(ds.hospitals)} hospital(s) to {out} (ground truth: {out / 'truth.csv'})"
        )

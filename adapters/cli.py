"""CLI commands of the adapter framework: ingest, replay, adapters, watch, synth (added to `lienthong`).

Output follows the reader's language (fhir_server/i18n.py: `--lang`, LIENTHONG_LANG, LANG). `ingest`
exit codes, for schedulers and cron jobs: 0 every record accepted; 1 some records rejected (they are in
the dead letters); 2 a path missing, a file unreadable or not usable as a whole (not recognised, not
well-formed).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.i18n import _
from fhir_server.settings import Settings

console = Console()

_SKIPPED_SUFFIXES = (".csv", ".md", ".json")


def _settings(db: str | None) -> Settings:
    """--db flag, else LIENTHONG_DATABASE_URL, else ./lienthong.db."""
    return Settings.from_env().with_(database_url=db)


def _files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files to ingest, paths that do not exist): folders expanded recursively, hidden files and
    side files (*.csv, *.md, *.json) skipped."""
    out: list[Path] = []
    missing: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and not f.name.startswith(".") and f.suffix.lower() not in _SKIPPED_SUFFIXES
            )
        elif p.is_file():
            out.append(p)
        else:
            missing.append(p)
    return out, missing


def _options(vendor: str | None, profile_set: str | None, check: bool | None = None) -> dict:
    """Adapter options from CLI flags."""
    out: dict = {k: v for k, v in (("vendor", vendor), ("profile_set", profile_set)) if v}
    if check is not None:
        out["check"] = check
    return out


def _progress(what: str) -> Progress:
    """A progress bar on a terminal, nothing in logs and pipes."""
    return Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )


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
    _register_ingest(app, open_runtime)
    _register_replay(app, open_runtime)
    _register_tools(app, open_runtime)
    _register_watch(app, open_runtime)


def _register_ingest(app: typer.Typer, open_runtime: Callable) -> None:
    """`lienthong ingest`."""

    @app.command(
        "ingest",
        help=_(
            "Ingest files or folders through the adapters. The summary names every rejected record "
            "(file, MA_LK, table, STT, field). Exit code: 0 all accepted, 1 some records rejected, "
            "2 a path missing or a file unusable."
        ),
    )
    def ingest_cmd(
        paths: list[Path] = typer.Argument(..., help=_("files or folders to ingest")),
        adapter: str = typer.Option(None, "--adapter", "-a", help=_("adapter name (default: detect)")),
        vendor: str = typer.Option(None, help=_("QĐ130 vendor profile (vnpt, viettel, vietsens, auto)")),
        profile_set: str = typer.Option(None, "--profile-set", help="hl7vn | ehealth"),
        db: str = typer.Option(None, "--db", help=_("database URL")),
        batch: int = typer.Option(50, help=_("files per group commit (1 = commit each file alone)")),
        report: Path = typer.Option(
            None, "--report", help=_("write every error and warning to FILE.csv or FILE.json")
        ),
        warnings: bool = typer.Option(False, "--warnings", help=_("list warnings in the summary too")),
        check: bool = typer.Option(
            None,
            "--check/--no-check",
            help=_("QĐ130 agency-style check as warnings (default: LIENTHONG_CHECK_INGEST)"),
        ),
        broker: str = typer.Option(
            None,
            "--broker",
            help=_("archive and queue the files on this NATS JetStream for `lienthong worker`"),
        ),
    ) -> None:
        """Ingest files/folders; summary naming every rejected record; exit code 0/1/2."""
        from adapters.pipeline import ingest_many
        from adapters.report import exit_code, outcome_of, print_summary, unreadable, write_report

        runtime = open_runtime(_settings(db).with_(broker_url=broker))
        files, missing = _files(paths)
        if broker:
            _enqueue_files(runtime, files, adapter, _options(vendor, profile_set), batch)
            return
        from adapters.recover import recover_quietly

        recover_quietly(runtime.store, runtime.settings)  # rows a killed earlier run left unfinished
        outcomes = [unreadable(str(p), _("no such file or folder")) for p in missing]
        start = time.perf_counter()
        size = max(1, batch)
        with _progress(_("ingesting")) as progress:
            task = progress.add_task("ingest", total=len(files))
            for i in range(0, len(files), size):
                items: list[tuple[Path, bytes]] = []
                for f in files[i : i + size]:
                    try:
                        items.append((f, f.read_bytes()))
                    except OSError as exc:
                        outcomes.append(unreadable(str(f), exc.strerror or str(exc)))
                results = ingest_many(
                    runtime.store,
                    [(payload, f"file:{f}") for f, payload in items],
                    adapter=adapter,
                    options=_options(vendor, profile_set, check),
                    settings=runtime.settings,
                )
                outcomes += [outcome_of(str(f), res) for (f, _payload), res in zip(items, results)]
                progress.advance(task, len(files[i : i + size]))
        if files:
            runtime.store.analyze()  # queries right after a bulk load must not plan on stale statistics
        print_summary(console, outcomes, time.perf_counter() - start, show_warnings=warnings)
        if report is not None:
            write_report(report, outcomes)
            console.print(_("every error and warning written to {path}", path=report), soft_wrap=True)
        raise typer.Exit(code=exit_code(outcomes))


def _register_replay(app: typer.Typer, open_runtime: Callable) -> None:
    """`lienthong replay`."""

    @app.command(
        "replay",
        help=_(
            "Re-run dead letters through their adapter after a mapping fix; says per dead letter what "
            "happened. Exit code 1 when some still fail."
        ),
    )
    def replay_cmd(
        dl_id: int = typer.Argument(None, help=_("dead-letter id (default: all open)")),
        db: str = typer.Option(None, "--db", help=_("database URL")),
    ) -> None:
        """Re-run dead letters; one line per dead letter with what happened."""
        from adapters.dead_letters import print_replay
        from adapters.pipeline import replay

        runtime = open_runtime(_settings(db))
        outcomes = replay(runtime.store, dl_id, settings=runtime.settings)
        if not outcomes:
            console.print(_("no open dead letters"))
            return
        print_replay(outcomes)
        ok = sum(1 for o in outcomes if o["status"] == "replayed")
        console.print(_("{ok} of {total} dead letter(s) replayed", ok=ok, total=len(outcomes)))
        if ok < len(outcomes):
            raise typer.Exit(code=1)


def _register_tools(app: typer.Typer, open_runtime: Callable) -> None:
    """`lienthong conceptmaps`, `adapters`, `synth`."""

    @app.command("conceptmaps", help=_("Load the QĐ130 code maps into the server as ConceptMap resources."))
    def conceptmaps_cmd(
        db: str = typer.Option(None, "--db", help=_("database URL")),
        profile_set: str = typer.Option("hl7vn", "--profile-set", help="hl7vn | ehealth"),
    ) -> None:
        """Load the QĐ130 code maps (mappings/qd130) into the server as ConceptMap resources."""
        from adapters.qd130.conceptmaps import qd130_conceptmap_bundle
        from fhir_server.interactions.bundles import transaction

        out = transaction(open_runtime(_settings(db)).store, qd130_conceptmap_bundle(profile_set))
        console.print(
            _("{count} ConceptMap(s) loaded; browse them at [base]/ConceptMap", count=len(out["entry"])),
            markup=False,
        )

    @app.command("adapters", help=_("List installed input adapters (and plug-ins that failed to load)."))
    def adapters_cmd() -> None:
        """List installed input adapters (and plug-ins that failed to load)."""
        from adapters.registry import adapters, broken_adapters

        table = Table(title=_("Adapters (entry-point group lienthong.adapters)"))
        for col in (_("name"), _("channel"), _("status"), _("description")):
            table.add_column(col, overflow="fold")
        for name, ad in sorted(adapters().items()):
            table.add_row(name, ad.channel, "ok", ad.description)
        for name, why in sorted(broken_adapters().items()):
            table.add_row(name, "-", f"[red]{_('failed')}[/red]", why)
        console.print(table)

    @app.command(
        "synth", help=_("Generate deterministic synthetic QĐ130 exports of several hospitals (+ truth.csv).")
    )
    def synth_cmd(
        out: Path = typer.Option(..., "--out", help=_("output folder")),
        hospitals: int = typer.Option(3, "--hospitals", help=_("number of hospitals")),
        visits: int = typer.Option(100, "--visits", help=_("number of visits (one file each)")),
        seed: int = typer.Option(0, "--seed", help=_("random seed (same seed, same files)")),
    ) -> None:
        """Generate deterministic synthetic QĐ130 envelopes (+ truth.csv ground truth)."""
        from adapters.synth import generate

        ds = generate(hospitals=hospitals, visits=visits, seed=seed)
        paths = ds.write(out)
        console.print(
            _(
                "wrote {files} file(s) for {persons} person(s) across {hospitals} hospital(s) to {out} "
                "(ground truth: {truth})",
                files=len(paths),
                persons=len(ds.persons),
                hospitals=len(ds.hospitals),
                out=out,
                truth=out / "truth.csv",
            ),
            soft_wrap=True,
        )


def _register_watch(app: typer.Typer, open_runtime: Callable) -> None:
    """`lienthong watch`."""

    @app.command(
        "watch", help=_("Poll a drop folder: ingest each new file, then move it to done/ or failed/.")
    )
    def watch_cmd(
        folder: Path = typer.Argument(..., help=_("drop folder")),
        interval: float = typer.Option(2.0, help=_("poll interval, seconds")),
        once: bool = typer.Option(False, "--once", help=_("process what is there, then exit")),
        adapter: str = typer.Option(None, "--adapter", "-a", help=_("adapter name (default: detect)")),
        vendor: str = typer.Option(None, help=_("QĐ130 vendor profile (vnpt, viettel, vietsens, auto)")),
        db: str = typer.Option(None, "--db", help=_("database URL")),
    ) -> None:
        """Poll a drop folder: ingest each new file, then move it to done/ or failed/."""
        from adapters.pipeline import ingest
        from adapters.report import outcome_of, print_summary

        runtime = open_runtime(_settings(db))
        done, failed = folder / "done", folder / "failed"
        done.mkdir(parents=True, exist_ok=True)
        failed.mkdir(parents=True, exist_ok=True)
        console.print(
            _("watching {folder} (every {interval}s); Ctrl-C to stop", folder=folder, interval=interval),
            soft_wrap=True,
        )
        try:
            while True:
                for f in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
                    # A file still being written changes size between polls: wait for it to settle.
                    size = f.stat().st_size
                    time.sleep(0.05)
                    if f.stat().st_size != size:
                        continue
                    start = time.perf_counter()
                    res = ingest(
                        runtime.store,
                        f.read_bytes(),
                        source=f"watch:{f}",
                        adapter=adapter,
                        options=_options(vendor, None),
                        settings=runtime.settings,
                    )
                    target = done if res.status == "processed" else failed
                    shutil.move(str(f), target / f.name)
                    print_summary(console, [outcome_of(f.name, res)], time.perf_counter() - start)
                if once:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            console.print(_("stopped"))

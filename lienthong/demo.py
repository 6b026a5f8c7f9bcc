"""`lienthong demo`: synthetic exports from a few hospitals → ingest → link → the URLs worth opening.

The fastest way to see what Lienthong does: a person treated at two hospitals appears once in the
clinician view with both hospitals' records, and a search by CCCD finds both hospitals' Patient records.
Everything is generated (adapters/synth): no real person's data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import typer
from rich.console import Console

from fhir_server.settings import Settings
from lienthong.i18n import _

console = Console()


@dataclass
class DemoResult:
    """What the demo loaded and the patient it shows."""

    files: int
    accepted: int
    rejected: int
    patient_id: str
    linked_ids: list[str]
    cccd: str
    name: str
    hospitals: list[str]
    links: dict


def run_demo(runtime, out: Path, hospitals: int, visits: int, seed: int) -> DemoResult:
    """Generate, write, ingest and link a synthetic dataset; pick a person seen at two hospitals."""
    from adapters.ids import deterministic_id
    from adapters.pipeline import ingest_many
    from adapters.synth import generate
    from fhir_server.identity import service

    ds = generate(hospitals=hospitals, visits=visits, seed=seed, missing_cccd_rate=0.0)
    paths = ds.write(out)
    accepted = rejected = 0
    for i in range(0, len(paths), 50):
        chunk = paths[i : i + 50]
        results = ingest_many(
            runtime.store, [(p.read_bytes(), f"file:{p}") for p in chunk], settings=runtime.settings
        )
        accepted += sum(r.accepted for r in results)
        rejected += sum(r.rejected for r in results)
    links = service.link_all(runtime.store)
    names = {h[0]: h[3] for h in ds.hospitals}
    # The person with the most hospitals (then the most visits) makes the clearest demo.
    visits_of: dict[str, int] = {}
    for v in ds.visits:
        visits_of[v.person_id] = visits_of.get(v.person_id, 0) + 1
    person = max(ds.persons, key=lambda p: (len(p.mrn), visits_of.get(p.person_id, 0), p.person_id))
    if len(person.mrn) < 2:
        raise RuntimeError("the generated dataset has nobody seen at two hospitals; raise --visits")
    facility, ma_bn = sorted(person.mrn.items())[0]
    patient_id = deterministic_id("Patient", facility, ma_bn)
    return DemoResult(
        files=len(paths),
        accepted=accepted,
        rejected=rejected,
        patient_id=patient_id,
        linked_ids=service.linked_patient_ids(runtime.store, patient_id),
        cccd=person.cccd,
        name=person.full_name,
        hospitals=[names.get(f, f) for f in sorted(person.mrn)],
        links=links,
    )


def demo_urls(settings: Settings, result: DemoResult) -> list[tuple[str, str]]:
    """(what, URL) pairs to open once the server runs."""
    from mappings import profile_set

    root = f"http://{settings.host}:{settings.port}"
    base = root + settings.base_path
    cccd_system = profile_set(settings.profile_set)["identifier_systems"]["cccd"]
    return [
        (
            _("clinician view: one person, records of every hospital"),
            f"{root}/ui/patient/{result.patient_id}",
        ),
        (
            _("search by CCCD (finds each hospital's Patient record)"),
            f"{base}/Patient?identifier={quote(cccd_system, safe=':/')}|{result.cccd}",
        ),
        (_("everything about the person, all hospitals"), f"{base}/Patient/{result.patient_id}/$everything"),
        (_("patient search page"), f"{root}/ui?q={quote(result.name)}"),
        (_("FHIR capability statement"), f"{base}/metadata"),
    ]


def register(app: typer.Typer, open_runtime: Callable, serve: Callable | None = None) -> None:
    """Add the `demo` command; `serve(settings)` runs the server afterwards with --serve."""

    @app.command(
        "demo",
        help=_(
            "Generate a few hospitals' synthetic QĐ130 exports, ingest them, link patients across "
            "hospitals and print the URLs to open."
        ),
    )
    def demo_cmd(
        db: str = typer.Option(
            None, "--db", help=_("database URL (default: LIENTHONG_DATABASE_URL or ./lienthong.db)")
        ),
        out: Path = typer.Option(Path("lienthong-demo"), "--out", help=_("folder for the generated exports")),
        hospitals: int = typer.Option(3, "--hospitals", help=_("number of hospitals")),
        visits: int = typer.Option(60, "--visits", help=_("number of visits (one file each)")),
        seed: int = typer.Option(7, "--seed", help=_("random seed (same seed, same data)")),
        port: int = typer.Option(None, "--port", help=_("port the URLs point at (default 8080)")),
        and_serve: bool = typer.Option(False, "--serve", help=_("start the server when done")),
    ) -> None:
        """Synthetic exports → ingest → link → URLs (optionally serve them)."""
        settings = Settings.from_env().with_(database_url=db, port=port)
        runtime = open_runtime(settings)
        start = time.perf_counter()
        with console.status(_("generating, ingesting and linking…")):
            result = run_demo(runtime, out, hospitals, visits, seed)
        console.print(
            _(
                "{files} synthetic export(s) from {hospitals} hospital(s) written to {out}; "
                "{accepted} visit(s) ingested, {rejected} rejected, in {seconds:.1f}s",
                files=result.files,
                hospitals=hospitals,
                out=out,
                accepted=result.accepted,
                rejected=result.rejected,
                seconds=time.perf_counter() - start,
            ),
            soft_wrap=True,
        )
        console.print(
            _(
                "linking: {patients} Patient record(s), {links} link(s), {queued} pair(s) queued for review",
                patients=result.links.get("patients", 0),
                links=result.links.get("links", 0),
                queued=result.links.get("queued", 0),
            ),
            soft_wrap=True,
        )
        console.print(
            _(
                "{name} (CCCD {cccd}) was treated at {hospitals}: {count} Patient record(s) linked as one person.",
                name=result.name,
                cccd=result.cccd,
                hospitals=", ".join(result.hospitals),
                count=len(result.linked_ids),
            ),
            soft_wrap=True,
        )
        console.print(_("Open these once the server runs:"))
        for what, url in demo_urls(settings, result):
            console.print(f"  {what}", markup=False, highlight=False, soft_wrap=True)
            console.print(f"    {url}", markup=False, highlight=False, soft_wrap=True)
        runtime.store.close()
        if and_serve and serve is not None:
            serve(settings)
        else:
            hint = "lienthong serve" + (f" --db {db}" if db else "") + (f" --port {port}" if port else "")
            console.print(_("start the server with: {command}", command=hint), markup=False, soft_wrap=True)

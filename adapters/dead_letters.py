"""`lienthong dead-letters list|show ID|export`: records the pipeline could not take, named like the
ingest summary names them (file, MA_LK, table, STT, field), in the reader's language; and the table
`lienthong replay` prints."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from adapters.i18n import _
from fhir_server.i18n import from_json
from fhir_server.settings import Settings
from fhir_server.timeutil import instant

console = Console()

EXPORT_COLUMNS = (
    "id",
    "status",
    "channel",
    "file",
    "ma_lk",
    "table",
    "stt",
    "field",
    "location",
    "message",
    "errors",
    "attempts",
    "created_at",
)


def error_text(err: dict | str, lang: str | None = None) -> str:
    """One stored error in the reader's language (its message id when kept, else its stored text)."""
    if isinstance(err, str):
        return err
    message = from_json(err.get("message"))
    return message.render(lang) if message is not None else str(err.get("reason") or "")


def _file(source: str | None) -> str:
    """The file name of an inbox source ("file:/drop/a.xml" → "/drop/a.xml"), or the source itself."""
    if not source:
        return ""
    kind, sep, rest = source.partition(":")
    return rest if sep and kind in ("file", "watch") else source


def describe(dl: dict, sources: dict[int, str]) -> dict:
    """A dead letter as the CLI shows and exports it: first error's place, every error, in the reader's
    language."""
    errors = dl.get("errors") or []
    first = errors[0] if errors else {"location": dl.get("location") or "", "reason": dl.get("reason") or ""}
    return {
        "id": dl["dl_id"],
        "status": dl.get("status") or "",
        "channel": dl.get("channel") or "",
        "file": _file(sources.get(dl.get("inbox_id") or -1)),
        "inbox_id": dl.get("inbox_id"),
        "ma_lk": dl.get("record_key") or "",
        "table": first.get("table") or "",
        "stt": str(first.get("stt") or ""),
        "field": first.get("field") or "",
        "location": first.get("location") or dl.get("location") or "",
        "message": error_text(first) if errors else (dl.get("reason") or ""),
        "errors": [
            {
                "location": e.get("location") or "",
                "table": e.get("table") or "",
                "stt": str(e.get("stt") or ""),
                "field": e.get("field") or "",
                "severity": e.get("severity") or "error",
                "message": error_text(e),
            }
            for e in errors
        ],
        "attempts": dl.get("attempts") or 0,
        "created_at": instant(dl["created_at"]) if dl.get("created_at") else "",
        "replayed_at": instant(dl["replayed_at"]) if dl.get("replayed_at") else "",
    }


def _status_label(status: str) -> str:
    """A dead-letter or replay status in the reader's language."""
    return {
        "open": _("open"),
        "replayed": _("replayed"),
        "failed": _("failed"),
        "not-found": _("not found"),
    }.get(status, status)


def print_replay(outcomes: list[dict]) -> None:
    """What `replay` did, per dead letter: a table on a terminal, one tab-separated line each otherwise."""
    if console.is_terminal:
        console.print(replay_table(outcomes))
        return
    for o in outcomes:
        typer.echo(
            f"{o['dead_letter_id']}\t{o.get('record_key') or ''}\t{_status_label(o['status'])}\t{_what(o)}"
        )


def _what(o: dict) -> str:
    """What happened to one dead letter on replay, in a sentence."""
    records = o.get("records") or []
    if o["status"] == "replayed":
        return _(
            "{records} record(s) written: {created} resource(s) created, {existing} updated or unchanged",
            records=len(records),
            created=sum(r.get("created", 0) for r in records),
            existing=sum(r.get("existing", 0) for r in records),
        )
    if o["status"] == "not-found":
        return _("no dead letter with this id")
    errs = o.get("errors") or [e for r in records for e in r.get("errors", [])]
    return "; ".join(_one_line(e) for e in errs) or _("no record could be read")


def replay_table(outcomes: list[dict]) -> Table:
    """What `replay` did, one row per dead letter: written (how many resources) or why it still fails."""
    t = Table(title=_("Replay"))
    for col in (_("dead letter"), "MA_LK", _("status"), _("what happened")):
        t.add_column(col, overflow="fold")
    for o in outcomes:
        what = _what(o)
        style = "green" if o["status"] == "replayed" else "red"
        t.add_row(
            str(o["dead_letter_id"]),
            o.get("record_key") or "",
            f"[{style}]{_status_label(o['status'])}[/{style}]",
            what,
        )
    return t


def _one_line(err: dict | str) -> str:
    """'XML1 STT=1 NGAY_RA: reason' for one error dict."""
    if isinstance(err, str):
        return err
    place = " ".join(
        x for x in (err.get("table"), f"STT={err['stt']}" if err.get("stt") else "", err.get("field")) if x
    )
    return f"{place or err.get('location', '')}: {err.get('reason', '')}"


def _messages(d: dict) -> str:
    """The first error's text, with how many more there are."""
    more = len(d["errors"]) - 1
    return d["message"] + (_(" (+{count} more)", count=more) if more > 0 else "")


def _list_table(title: str, items: list[dict]) -> Table:
    """The dead-letter list as a table (terminal)."""
    t = Table(title=title)
    for col in ("id", _("status"), _("file"), "MA_LK", _("table"), "STT", _("field"), _("error")):
        t.add_column(col, overflow="fold")
    for d in items:
        t.add_row(
            str(d["id"]),
            _status_label(d["status"]),
            Path(d["file"]).name if d["file"] else "",
            d["ma_lk"],
            d["table"],
            d["stt"],
            d["field"] or ("" if d["location"] == "file" else d["location"]),
            _messages(d),
        )
    return t


def _show_tables(dl_id: int, fields: list[tuple[str, str]], errors: list[dict]) -> None:
    """`dead-letters show` on a terminal: the dead letter, then its errors."""
    t = Table(show_header=False, title=_("Dead letter {id}", id=dl_id))
    t.add_column(overflow="fold")
    t.add_column(overflow="fold")
    for label, value in fields:
        t.add_row(label, value)
    console.print(t)
    errs = Table(title=_("Errors"))
    for col in (_("table"), "STT", _("field"), _("location"), _("message")):
        errs.add_column(col, overflow="fold")
    for e in errors:
        errs.add_row(e["table"], e["stt"], e["field"], e["location"], e["message"])
    console.print(errs)


def _to_csv(items: list[dict]) -> str:
    """CSV export, one row per dead letter (errors joined)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for d in items:
        row = dict(d)
        row["errors"] = " | ".join(_one_line({**e, "reason": e["message"]}) for e in d["errors"])
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def register(app: typer.Typer, open_runtime: Callable) -> None:
    """Add `dead-letters list|show|export` to the main CLI."""
    group = typer.Typer(
        help=_("Dead letters: records that could not be ingested, kept with their payload for replay."),
        no_args_is_help=True,
    )
    db_option = typer.Option(None, "--db", help=_("database URL"))

    def _repo(db: str | None):
        from adapters.repository import ingest_repository

        return ingest_repository(open_runtime(Settings.from_env().with_(database_url=db)).store)

    def _status(status: str) -> str | None:
        return None if status == "all" else status

    @group.command(
        "list", help=_("List dead letters: id, file, MA_LK, table, STT, field and the first error.")
    )
    def list_cmd(
        status: str = typer.Option("open", help="open | replayed | failed | all"),
        limit: int = typer.Option(50, help=_("at most this many")),
        offset: int = typer.Option(0, help=_("skip this many (oldest first)")),
        db: str = db_option,
    ) -> None:
        """List dead letters."""
        repo = _repo(db)
        rows = repo.list_dead_letters(_status(status), limit, offset)
        total = repo.count_dead_letters(_status(status))
        sources = repo.inbox_sources([r.get("inbox_id") for r in rows])
        title = _("Dead letters ({shown} of {total})", shown=len(rows), total=total)
        items = [describe(r, sources) for r in rows]
        if console.is_terminal:
            console.print(_list_table(title, items))
            return
        # Off a terminal: one tab-separated line per dead letter (greppable, never cut).
        typer.echo(title)
        for d in items:
            place = " ".join(
                x
                for x in (
                    f"MA_LK={d['ma_lk']}" if d["ma_lk"] else "",
                    d["table"],
                    f"STT={d['stt']}" if d["stt"] else "",
                    d["field"],
                )
                if x
            )
            line = f"{d['id']}\t{_status_label(d['status'])}\t{d['file']}\t{place}: {_messages(d)}"
            typer.echo(line)

    @group.command("show", help=_("Show one dead letter: where it came from and every error."))
    def show_cmd(
        dl_id: int = typer.Argument(..., help=_("dead-letter id")),
        payload: bool = typer.Option(False, "--payload", help=_("print the raw payload too")),
        db: str = db_option,
    ) -> None:
        """Show one dead letter with every error."""
        repo = _repo(db)
        dl = repo.get_dead_letter(dl_id)
        if dl is None:
            console.print(_("no dead letter with id {id}", id=dl_id))
            raise typer.Exit(code=1)
        d = describe(dl, repo.inbox_sources([dl.get("inbox_id")]))
        fields = [
            (_("status"), _status_label(d["status"])),
            (_("channel"), d["channel"]),
            (_("file"), d["file"]),
            (_("inbox id"), str(d["inbox_id"] or "")),
            ("MA_LK", d["ma_lk"]),
            (_("received"), d["created_at"]),
            (_("replay attempts"), str(d["attempts"])),
            (_("payload"), _("{size} bytes", size=len(dl.get("payload") or b""))),
        ]
        errors = d["errors"] or [
            {"table": "", "stt": "", "field": "", "location": d["location"], "message": d["message"]}
        ]
        if console.is_terminal:
            _show_tables(dl_id, fields, errors)
        else:
            typer.echo(_("Dead letter {id}", id=dl_id))
            for label, value in fields:
                typer.echo(f"{label}: {value}")
            typer.echo(_("Errors") + ":")
            for e in errors:
                typer.echo(f"  {_one_line({**e, 'reason': e['message']})}")
        if payload and dl.get("payload"):
            console.print(
                dl["payload"].decode("utf-8", "replace"), markup=False, highlight=False, soft_wrap=True
            )

    @group.command(
        "export", help=_("Export dead letters with every error, as JSON (default) or CSV (FILE.csv).")
    )
    def export_cmd(
        out: Path = typer.Option(None, "--out", help=_("FILE.json or FILE.csv (default: JSON on stdout)")),
        status: str = typer.Option("all", help="open | replayed | failed | all"),
        payloads: bool = typer.Option(
            False, "--payloads", help=_("include the raw payloads (base64, JSON only)")
        ),
        db: str = db_option,
    ) -> None:
        """Export dead letters."""
        repo = _repo(db)
        rows, offset = [], 0
        while True:
            page = repo.list_dead_letters(_status(status), 1000, offset)
            rows += page
            offset += len(page)
            if len(page) < 1000:
                break
        sources = repo.inbox_sources([r.get("inbox_id") for r in rows])
        items = [describe(r, sources) for r in rows]
        if payloads:
            for item in items:
                full = repo.get_dead_letter(item["id"]) or {}
                item["payload_base64"] = base64.b64encode(full.get("payload") or b"").decode()
        if out is not None and out.suffix.lower() == ".csv":
            out.write_text(_to_csv(items), encoding="utf-8")
        else:
            text = json.dumps({"total": len(items), "items": items}, ensure_ascii=False, indent=2)
            if out is None:
                typer.echo(text)
                return
            out.write_text(text, encoding="utf-8")
        console.print(
            _("{count} dead letter(s) written to {path}", count=len(items), path=out), soft_wrap=True
        )

    app.add_typer(group, name="dead-letters")

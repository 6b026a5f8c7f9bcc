"""Ingestion shared by all adapters: archive raw → parse → map → one DB transaction per record → report.

Order matters: the raw payload is committed to `inbox` before parsing, so nothing received is ever
lost; each record is written in its own transaction, so one bad record never blocks the others; a
record that fails anywhere lands in `dead_letter` with its own payload and can be replayed.

Commits are tagged with origin "ingest": the server's after-commit listeners (cross-hospital identity
linking) act on them; the pipeline itself knows nothing about linking.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field

from adapters.base import Adapter, RecordError, SourceRecord
from adapters.i18n import msg
from adapters.registry import adapters as all_adapters
from adapters.registry import detect, get_adapter
from adapters.repository import ClosedElsewhere, IngestRepository, ingest_repository
from fhir_server.errors import FhirError
from fhir_server.i18n import current_lang
from fhir_server.interactions.group import commit_group
from fhir_server.logsafe import log_failure
from fhir_server.settings import Settings, get_settings
from fhir_server.storage.base import Storage
from fhir_server.storage.snapshot import SOURCE_TIME_URL, source_time_extension

log = logging.getLogger(__name__)
ORIGIN = "ingest"


@dataclass
class RecordResult:
    """Outcome of one source record."""

    key: str
    status: str  # accepted | rejected
    errors: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    resources: int = 0
    created: int = 0
    existing: int = 0  # PUT on a resource that existed (updated, or kept as-is when unchanged)
    dead_letter_id: int | None = None


@dataclass
class IngestResult:
    """Outcome of one payload: per-record results plus file-level errors/warnings."""

    inbox_id: int | None
    adapter: str | None
    status: str  # processed | partial | failed
    records: list[RecordResult] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    source: str | None = None  # where the payload came from: "file:/drop/a.xml", "http:10.0.0.5"

    @property
    def accepted(self) -> int:
        """Number of records written."""
        return sum(1 for r in self.records if r.status == "accepted")

    @property
    def rejected(self) -> int:
        """Number of records dead-lettered."""
        return sum(1 for r in self.records if r.status == "rejected")

    def as_dict(self) -> dict:
        """JSON-ready form for HTTP responses and the inbox summary."""
        d = asdict(self)
        d["accepted"] = self.accepted
        d["rejected"] = self.rejected
        return d


def _resolve(payload: bytes, adapter: str | Adapter | None, content_type: str | None) -> Adapter | None:
    """Adapter by name/instance, or by sniffing."""
    if adapter is None:
        return detect(payload, content_type)
    if isinstance(adapter, str):
        return get_adapter(adapter)
    return adapter


def _count(response: dict) -> tuple[int, int]:
    """(created, existing) from a transaction-response Bundle (the store answers 200 for update and no-op)."""
    created = existing = 0
    for e in response.get("entry", []):
        status = (e.get("response") or {}).get("status", "")
        if status.startswith("201"):
            created += 1
        elif status.startswith("200"):
            existing += 1
    return created, existing


def stored_errors(errors: list[RecordError], lang: str | None = None) -> list[dict]:
    """Errors as kept in a dead letter: the reason (English unless `lang`) plus the message id, so they
    can be shown in any language later."""
    out = []
    for e in errors:
        d = e.as_dict(lang)
        if e.message is not None:
            d["message"] = e.message.to_json()
        out.append(d)
    return out


def _dicts(errors: list[RecordError], lang: str, keep_message: bool) -> list[dict]:
    """Errors/warnings as result dicts in `lang`; with their message ids when a replay will store them."""
    return stored_errors(errors, lang) if keep_message else [e.as_dict(lang) for e in errors]


def _reference_warnings(bundle: dict, response: dict, key: str) -> list[dict]:
    """Per-record warnings for references to resources that did not exist when the record was written."""
    out = []
    entries = bundle.get("entry", [])
    for at, e in enumerate(response.get("entry", [])):
        for issue in ((e.get("response") or {}).get("outcome") or {}).get("issue", []):
            if issue.get("severity") == "warning" and issue.get("code") == "not-found":
                where = (entries[at].get("request") or {}).get("url", "") if at < len(entries) else ""
                out.append(RecordError(where, issue.get("diagnostics", ""), key, "warning").as_dict())
    return out


def _dead(
    repo: IngestRepository,
    ad: Adapter,
    inbox_id: int | None,
    key: str | None,
    errors: list[RecordError],
    payload: bytes | None,
    enabled: bool = True,
) -> int | None:
    """Dead-letter one record: the first error's location, all reasons joined (None when disabled)."""
    if not enabled:
        return None
    first = errors[0] if errors else RecordError("unknown", "unknown failure")
    reason = "; ".join(f"{e.location}: {e.reason}" for e in errors) or first.reason
    return repo.add_dead_letter(
        channel=ad.channel,
        reason=reason,
        inbox_id=inbox_id,
        record_key=key,
        location=first.location,
        payload=payload,
        errors=stored_errors(errors),
    )


@dataclass
class _Staged:
    """A mapped record waiting for the group commit."""

    result: RecordResult
    record: SourceRecord
    bundle: dict
    adapter: Adapter
    inbox_id: int | None


def _stage(
    repo: IngestRepository,
    ad: Adapter,
    payload: bytes,
    options: dict,
    inbox_id: int | None,
    result: IngestResult,
    dead_letters: bool = True,
) -> list[_Staged]:
    """Parse and map every record of a payload; failures go to `result` (and dead letters) at once."""
    lang = current_lang()
    parsed = ad.parse(payload, options)
    file_errors = [e for e in parsed.errors if e.severity != "warning"]
    result.warnings += [e.as_dict(lang) for e in parsed.errors if e.severity == "warning"]
    if file_errors:
        # Errors naming a record belong to that record; the rest reject the file as a whole.
        by_key: dict[str | None, list[RecordError]] = {}
        for e in file_errors:
            by_key.setdefault(e.record_key, []).append(e)
        for key, errs in by_key.items():
            dl = _dead(repo, ad, inbox_id, key, errs, payload, dead_letters)
            if key is None:
                result.errors += [e.as_dict(lang) for e in errs]
            result.records.append(
                RecordResult(
                    key or "file", "rejected", _dicts(errs, lang, not dead_letters), dead_letter_id=dl
                )
            )
    staged = []
    bound = options.get("bound_facility")
    for rec in parsed.records:
        refusal = facility_refusal(ad, rec, bound) if bound else None
        if refusal is not None:
            rr = RecordResult(rec.key, "rejected", _dicts([refusal], lang, not dead_letters))
            rr.dead_letter_id = _dead(repo, ad, inbox_id, rec.key, [refusal], rec.payload, dead_letters)
            result.records.append(rr)
            continue
        try:
            mapped = ad.to_fhir(rec, options)
        except Exception as exc:  # adapters should not raise; if one does, only this record fails
            mapped = None
            why = msg("mapping failed: {detail}", detail=f"{type(exc).__name__}: {exc}")
            errs = [RecordError.of(why, "mapping", rec.key)]
        if mapped is not None:
            errs = list(mapped.errors)
            if mapped.bundle is None and not errs:
                errs = [RecordError.of(msg("adapter returned no bundle"), "mapping", rec.key)]
        rr = RecordResult(
            rec.key, "rejected", warnings=[w.as_dict(lang) for w in (mapped.warnings if mapped else [])]
        )
        result.records.append(rr)
        if errs:
            rr.errors = _dicts(errs, lang, not dead_letters)
            rr.dead_letter_id = _dead(repo, ad, inbox_id, rec.key, errs, rec.payload, dead_letters)
        else:
            if mapped.source_time:
                stamp_source_time(mapped.bundle, mapped.source_time)
            staged.append(_Staged(rr, rec, mapped.bundle, ad, inbox_id))
    return staged


def facility_refusal(ad: Adapter, rec: SourceRecord, bound: str) -> RecordError | None:
    """Why a record may not be ingested by a client bound to facility `bound` (None when it may).

    The adapter names the record's facility (`facility_of`: QĐ130 MA_CSKCB, HL7 v2 MSH-4); a record
    naming another facility, or none, is refused on its own so the rest of the payload still goes in."""
    facility_of = getattr(ad, "facility_of", None)
    found = facility_of(rec) if facility_of is not None else None
    if found == bound:
        return None
    where = getattr(ad, "facility_location", "facility")
    # HL7 v2 tags its errors ("[AR 207] "), so an ACK built from the result says AR with an ERR segment
    why = msg(
        "{tag}facility {found} of this record is not the facility {code} of the access token",
        tag=getattr(ad, "refusal_tag", ""),
        found=found or "?",
        code=bound,
    )
    return RecordError.of(why, where, rec.key, field=where.rsplit("/", 1)[-1])


def _stage_payload(
    dead: IngestRepository,
    ad: Adapter | None,
    err: str | None,
    payload: bytes,
    source: str | None,
    inbox_id: int | None,
    options: dict,
    result: IngestResult,
    lang: str,
) -> list[_Staged]:
    """Stage one archived payload's records; no adapter or a parser crash fails this payload only."""
    if ad is None:
        why = (
            RecordError("file", err)
            if err
            else RecordError.of(
                msg(
                    "no installed adapter recognises this payload (installed: {names})",
                    names=", ".join(sorted(all_adapters())),
                ),
                "file",
            )
        )
        result.errors.append(why.as_dict(lang))
        return []
    # What the adapter records in its Provenance: the archived payload's name and SHA-256.
    source_info = {"name": source, "sha256": hashlib.sha256(payload).hexdigest(), "inbox_id": inbox_id}
    try:
        return _stage(dead, ad, payload, {**options, "source": source_info}, inbox_id, result)
    except Exception as exc:  # never leave the inbox row "received" after an unexpected crash
        log_failure(log, "parsing inbox %s crashed", exc, inbox_id)
        why = msg("the pipeline failed: {detail}", detail=f"{type(exc).__name__}: {exc}")
        result.errors.append(RecordError.of(why, "pipeline").as_dict(lang))
        return []


def stamp_source_time(bundle: dict, when: str) -> None:
    """Mark every resource the Bundle writes with the source snapshot's own time, so the store never
    lets an older export overwrite a newer one (see fhir_server/storage/snapshot.py)."""
    ext = source_time_extension(when)
    for entry in bundle.get("entry") or ():
        res = entry.get("resource")
        if isinstance(res, dict) and (entry.get("request") or {}).get("method") in ("PUT", "POST"):
            meta = res.setdefault("meta", {})
            meta["extension"] = [
                *(e for e in meta.get("extension") or () if e.get("url") != SOURCE_TIME_URL),
                ext,
            ]


def _where(outcome: FhirError) -> str:
    """Where a failed commit is reported: "store" when it may succeed later (a conflict, the database
    down), "store/data" when the record's own data was refused (a resend fails the same way)."""
    return "store" if outcome.status == 409 or outcome.status >= 500 else "store/data"


def _commit(
    store: Storage,
    repo: IngestRepository,
    staged: list[_Staged],
    options: dict,
    dead_letters: bool = True,
) -> None:
    """Write all staged records in one database transaction, each record still atomic on its own."""
    if not staged:
        return
    outcomes = commit_group(
        store,
        [s.bundle for s in staged],
        validate=_validate_output(options),
        origin=ORIGIN,
        # Messages arrive out of order (an order before the admission that creates its Encounter): a
        # reference to a resource not written yet is kept with a warning, and resolves when the target
        # arrives under its deterministic id. Unresolved urn:uuid references are still refused.
        integrity_policy="lenient",
    )
    for s, outcome in zip(staged, outcomes, strict=True):
        rr = s.result
        if isinstance(outcome, dict):
            rr.status = "accepted"
            rr.resources = len(s.bundle.get("entry", []))
            rr.created, rr.existing = _count(outcome)
            rr.warnings += _reference_warnings(s.bundle, outcome, s.record.key)
            continue
        detail = "; ".join(i.get("diagnostics", "") for i in outcome.outcome.get("issue", [])) or str(outcome)
        errs = [
            RecordError.of(msg("transaction failed: {detail}", detail=detail), _where(outcome), s.record.key)
        ]
        rr.errors = _dicts(errs, current_lang(), not dead_letters)
        rr.dead_letter_id = _dead(
            repo, s.adapter, s.inbox_id, s.record.key, errs, s.record.payload, dead_letters
        )


def process_records(
    store: Storage,
    ad: Adapter,
    payload: bytes,
    options: dict,
    inbox_id: int | None,
    result: IngestResult,
    dead_letters: bool = True,
) -> None:
    """Parse, map and write every record of a payload into `result` (no inbox bookkeeping).

    With dead_letters=False (replays) failures are only reported: the caller updates the existing row."""
    repo = ingest_repository(store)
    staged = _stage(repo, ad, payload, options, inbox_id, result, dead_letters)
    _commit(store, repo, staged, options, dead_letters)


def _validate_output(options: dict) -> bool:
    """Whether adapter output gets the full R4B model validation on write.

    Off by default: adapters are trusted producers whose mappings their tests validate resource by
    resource, and model validation is most of the write cost. Turn it on per call (option
    `validate`) or for a deployment (LIENTHONG_VALIDATE_INGEST=true) while onboarding a new mapping."""
    return bool(options.get("validate", False))


def _with_settings(options: dict | None, settings: Settings | None) -> dict:
    """Call options, with the deployment's defaults (profile set, vendor path, validation) filled in."""
    settings = settings or get_settings()
    out = dict(options or {})
    out.setdefault("profile_set", settings.profile_set)
    if settings.vendor_path:
        out.setdefault("vendor_path", settings.vendor_path)
    out.setdefault("validate", settings.validate_ingest)
    out.setdefault("check", settings.check_ingest)
    return out


def _status(result: IngestResult) -> str:
    """processed (all accepted) | partial | failed (nothing accepted)."""
    if result.accepted and not result.rejected:
        return "processed"
    return "partial" if result.accepted else "failed"


def ingest(
    store: Storage,
    payload: bytes,
    *,
    source: str,
    adapter: str | None = None,
    content_type: str | None = None,
    options: dict | None = None,
    settings: Settings | None = None,
) -> IngestResult:
    """Archive, parse, map and store one payload; returns per-record results. Re-sending is idempotent."""
    return ingest_many(
        store,
        [(payload, source)],
        adapter=adapter,
        content_type=content_type,
        options=options,
        settings=settings,
    )[0]


def ingest_many(
    store: Storage,
    items: list[tuple[bytes, str]],
    *,
    adapter: str | None = None,
    content_type: str | None = None,
    options: dict | None = None,
    settings: Settings | None = None,
) -> list[IngestResult]:
    """Ingest several payloads ((bytes, source) pairs) with one archive commit and one data commit.

    Every payload is archived before any is parsed; the records of all payloads are then written in
    one database transaction (each record atomic on its own), so a busy MLLP link or a folder of
    files pays two commits per batch instead of three per file."""
    options = _with_settings(options, settings)
    repo = ingest_repository(store)
    resolved: list[tuple[Adapter | None, str | None]] = []
    for payload, _source in items:
        try:
            resolved.append((_resolve(payload, adapter, content_type), None))
        except KeyError as exc:
            resolved.append((None, str(exc.args[0]) if exc.args else str(exc)))
    inbox_ids = repo.archive_many(
        [
            {
                "payload": payload,
                "source": source,
                "channel": ad.channel if ad else (adapter or "unknown"),
                "content_type": content_type,
                "summary": {"options": options, "adapter": ad.name if ad else adapter},
            }
            for (payload, source), (ad, _err) in zip(items, resolved)
        ],
    )
    results: list[IngestResult] = []
    staged: list[_Staged] = []
    lang = current_lang()
    for (payload, source), (ad, err), inbox_id in zip(items, resolved, inbox_ids):
        result = IngestResult(inbox_id, ad.name if ad else adapter, "failed", source=source)
        results.append(result)
        staged += _stage_payload(repo, ad, err, payload, source, inbox_id, options, result, lang)
    try:
        _commit(store, repo, staged, options)
    except Exception as exc:  # database down: nothing committed; every staged record is reported failed
        log_failure(log, "group commit of %d records failed", exc, len(staged))
        why = msg("the database write failed: {detail}", detail=f"{type(exc).__name__}: {exc}")
        for s in staged:
            s.result.errors.append(RecordError.of(why, "store", s.record.key).as_dict(lang))
    marks = []
    for result in results:
        result.status = _status(result)
        marks.append((result.inbox_id, result.status, summary(result, options)))
    repo.mark_many(marks)
    return results


def summary(result: IngestResult, options: dict) -> dict:
    """What the inbox row keeps about its outcome (no payload data)."""
    return {
        "options": options,
        "adapter": result.adapter,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "errors": result.errors,
        "records": [
            {"key": r.key, "status": r.status, "dead_letter_id": r.dead_letter_id} for r in result.records
        ],
    }


class DeferredDeadLetters:
    """Stands in for the repository while records are processed: dead letters are collected (with a
    placeholder id) instead of written, so a broker worker writes them together with the inbox marks."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add_dead_letter(self, **row) -> int:
        """Keep the row; returns -(its position + 1) until `resolve` swaps in the real id."""
        self.rows.append(row)
        return -len(self.rows)

    @staticmethod
    def resolve(results: list[IngestResult], ids: list[int]) -> None:
        """Replace the placeholders in `results` by the ids the database gave the rows."""
        for result in results:
            for rec in result.records:
                if rec.dead_letter_id is not None and rec.dead_letter_id < 0:
                    rec.dead_letter_id = ids[-rec.dead_letter_id - 1]


@dataclass
class Archived:
    """A payload already in the inbox (a broker worker got its id from the stream)."""

    inbox_id: int
    payload: bytes
    adapter: str | None
    content_type: str | None
    options: dict
    source: str = "broker"


def _apply_outcomes(staged: list[_Staged], outcomes: list, sink, warnings: list[list[dict]]) -> None:
    """Per-record status from a group commit's outcomes (failed Bundles become dead letters in `sink`).
    Safe to run again on a retried transaction: every field it sets is reset first."""
    for s, outcome, before in zip(staged, outcomes, warnings, strict=True):
        rr = s.result
        rr.errors, rr.dead_letter_id, rr.status, rr.warnings = [], None, "rejected", list(before)
        if isinstance(outcome, dict):
            rr.status = "accepted"
            rr.resources = len(s.bundle.get("entry", []))
            rr.created, rr.existing = _count(outcome)
            rr.warnings += _reference_warnings(s.bundle, outcome, s.record.key)
            continue
        detail = "; ".join(i.get("diagnostics", "") for i in outcome.outcome.get("issue", [])) or str(outcome)
        errs = [
            RecordError.of(msg("transaction failed: {detail}", detail=detail), _where(outcome), s.record.key)
        ]
        rr.errors = _dicts(errs, current_lang(), False)
        rr.dead_letter_id = _dead(sink, s.adapter, s.inbox_id, s.record.key, errs, s.record.payload)


def process_archived(
    store: Storage,
    items: list[Archived],
    *,
    settings: Settings | None = None,
    extra_marks: list[tuple[int, str, dict]] = (),  # type: ignore[assignment]
) -> tuple[list[IngestResult], set[int]]:
    """Parse, map and group-commit archived ("queued") payloads, closing their inbox rows (status,
    summary, dead letters) IN THE SAME TRANSACTION as their data (broker workers).

    A row that another delivery closed first is left out (its data is not applied again), so a
    payload is committed once however often the broker delivers it. A database that cannot be reached
    raises `StorageUnavailable` (nothing committed) so the worker retries. Returns the results of the
    rows this call closed and their ids; `extra_marks` close more rows (e.g. HL7 re-sends) likewise."""
    repo = ingest_repository(store)
    while True:
        results, staged, stage_sink, validate = _stage_archived(items, settings)
        staged_warnings = [list(s.result.warnings) for s in staged]
        by_id = {it.inbox_id: it for it in items}
        closed: set[int] = set()
        marks_extra = [m for m in extra_marks if m[0] not in closed]

        def close(tx, outcomes, staged=staged, results=results, stage_sink=stage_sink) -> None:
            closed.clear()  # a retried transaction closes the rows again
            sink = DeferredDeadLetters()
            sink.rows = list(stage_sink.rows)
            _apply_outcomes(staged, outcomes, sink, staged_warnings)
            marks = []
            for r in results:
                r.status = _status(r)
                marks.append((r.inbox_id, r.status, _summary_builder(r, by_id[r.inbox_id].options, settings)))
            marks += [(i, st, (lambda _ids, sm=sm: sm)) for i, st, sm in marks_extra]
            closed.update(repo.finish_on(tx, sink.rows, marks))

        try:
            outcomes = commit_group(
                store,
                [s.bundle for s in staged],
                validate=validate,
                origin=ORIGIN,
                integrity_policy="lenient",  # as `_commit`: references may arrive before their targets
                before_commit=close,
            )
        except ClosedElsewhere as exc:
            items = [it for it in items if it.inbox_id not in exc.ids]
            extra_marks = [m for m in extra_marks if m[0] not in exc.ids]
            continue
        if not closed and (results or marks_extra):
            # The group was split into one transaction per Bundle (a Bundle the database refused):
            # the rows are closed on their own now (not atomically with the data, in this rare case).
            sink = DeferredDeadLetters()
            sink.rows = list(stage_sink.rows)
            _apply_outcomes(staged, outcomes, sink, staged_warnings)
            marks = [
                (r.inbox_id, _status(r), _summary_builder(r, by_id[r.inbox_id].options, settings))
                for r in results
            ]
            marks += [(i, st, (lambda _ids, sm=sm: sm)) for i, st, sm in marks_extra]
            closed = repo.finish_many(sink.rows, marks)
        return [r for r in results if r.inbox_id in closed], closed


def _summary_builder(result: IngestResult, options: dict, settings: Settings | None):
    """Summary of one result, built once its dead letters have ids."""

    def build(ids: list[int]) -> dict:
        DeferredDeadLetters.resolve([result], ids)
        return summary(result, _with_settings(options, settings))

    return build


def _stage_archived(items: list[Archived], settings: Settings | None):
    """Parse and map archived payloads; record-level failures go to a deferred sink."""
    sink = DeferredDeadLetters()
    results: list[IngestResult] = []
    staged: list[_Staged] = []
    validate = False
    for item in items:
        options = _with_settings(item.options, settings)
        validate = validate or _validate_output(options)
        try:
            ad = _resolve(item.payload, item.adapter, item.content_type)
            err = None
        except KeyError as exc:
            ad, err = None, str(exc.args[0]) if exc.args else str(exc)
        result = IngestResult(item.inbox_id, ad.name if ad else item.adapter, "failed", source=item.source)
        results.append(result)
        staged += _stage_payload(
            sink, ad, err, item.payload, item.source, item.inbox_id, options, result, current_lang()
        )  # type: ignore[arg-type]
    return results, staged, sink, validate


def _adapter_for_channel(channel: str) -> Adapter:
    """The adapter whose archive channel (or name) is `channel`."""
    for ad in all_adapters().values():
        if ad.channel == channel or ad.name == channel:
            return ad
    raise KeyError(f"no installed adapter for channel {channel!r}")


def replay(
    store: Storage, dl_id: int | None = None, *, options: dict | None = None, settings: Settings | None = None
) -> list[dict]:
    """Re-run one dead letter (or all open ones) through its adapter; returns one outcome per dead letter."""
    repo = ingest_repository(store)
    ids = [dl_id] if dl_id is not None else [d["dl_id"] for d in repo.list_dead_letters("open", 100000)]
    outcomes = []
    for i in ids:
        dl = repo.get_dead_letter(i)
        if dl is None:
            outcomes.append({"dead_letter_id": i, "status": "not-found"})
            continue
        key = dl.get("record_key")
        if not dl.get("payload"):
            repo.mark_dead_letter(i, "failed", "nothing to replay: no payload kept")
            why = RecordError.of(msg("nothing to replay: no payload kept"), "payload", key)
            outcomes.append(
                {
                    "dead_letter_id": i,
                    "record_key": key,
                    "status": "failed",
                    "errors": [why.as_dict(current_lang())],
                }
            )
            continue
        opts = dict(options or {})
        if dl.get("inbox_id"):
            row = repo.get_inbox(dl["inbox_id"])
            for k, v in ((row or {}).get("summary") or {}).get("options", {}).items():
                opts.setdefault(k, v)
        try:
            ad = _adapter_for_channel(dl["channel"])
        except KeyError as exc:
            repo.mark_dead_letter(i, "open", str(exc))
            why = RecordError("channel", str(exc.args[0]) if exc.args else str(exc), key)
            outcomes.append(
                {"dead_letter_id": i, "record_key": key, "status": "failed", "errors": [why.as_dict()]}
            )
            continue
        res = IngestResult(dl.get("inbox_id"), ad.name, "failed")
        opts = _with_settings(opts, settings)
        process_records(store, ad, dl["payload"], opts, dl.get("inbox_id"), res, dead_letters=False)
        ok = bool(res.records) and all(r.status == "accepted" for r in res.records)
        errs = [e for r in res.records for e in r.errors]
        reason = "; ".join(f"{e['location']}: {e['reason']}" for e in errs) or None
        repo.mark_dead_letter(i, "replayed" if ok else "open", reason, errs)
        outcomes.append(
            {
                "dead_letter_id": i,
                "record_key": key,
                "status": "replayed" if ok else "failed",
                "records": [asdict(r) for r in res.records],
                "errors": errs,
            }
        )
    return outcomes

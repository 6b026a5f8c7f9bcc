"""The QĐ130 adapter plug-in (entry point `qd130` in group `lienthong.adapters`)."""

from __future__ import annotations

from adapters.base import MappedRecord, ParseResult, RecordError, SourceRecord
from adapters.i18n import Problem, msg
from adapters.ids import deterministic_id
from fhir_server.settings import get_settings

from .check import check_hoso, to_record_warnings
from .context import Ctx
from .envelope import (
    HosoData,
    decode_hoso,
    maybe_unwrap_base64,
    read_envelope,
    single_hoso_payload,
    tables_config,
)
from .map_certificates import map_assessments, map_birth_certificates
from .map_claim import map_claim
from .map_conclusion import map_conclusion
from .map_docs import (
    map_discharge_paper,
    map_pregnancy_leave,
    map_reexam,
    map_reexam_dates,
    map_referral,
    map_sick_leave,
    map_summary,
)
from .map_drugs import map_drugs
from .map_episode import map_conditions, map_coverages, map_encounter, map_patient, map_xml1_observations
from .map_orders import map_progress, map_results, map_services
from .map_programs import map_hiv_care, map_tb_treatment
from .map_provenance import map_provenance
from .validate import validate
from .values import to_datetime
from .vendors import VendorProfile, detect_vendor, get_vendor
from .xmlsafe import BadXml, UnsafeXml, strip_bom

_SNIFF_ROOTS = (b"<GIAMDINHHS", b"<HSCHUNGTU", b"<KHAMSUCKHOE", b"<TONG_HOP")


class Qd130Adapter:
    """Vietnamese health-insurance XML (QĐ 130/4750) → one FHIR transaction Bundle per HOSO."""

    name = "qd130"
    channel = "qd130"
    facility_location = "XML1/TONG_HOP/MA_CSKCB"
    description = "QĐ 130/4750 BHYT XML (GIAMDINHHS envelope, XML1–XML15) → FHIR R4"

    def sniff(self, payload: bytes, content_type: str | None = None) -> bool:
        """True for a GIAMDINHHS-style envelope (also base64 of one, UTF-16, or a bare TONG_HOP)."""
        head = strip_bom(_utf8_head(payload[:4096]))
        if not head.startswith(b"<"):
            head = strip_bom(maybe_unwrap_base64(payload[:1_000_000])[:2048])
        return any(r in head for r in _SNIFF_ROOTS)

    def _vendor(self, payload: bytes, options: dict) -> VendorProfile:
        """Vendor profile from options['vendor'] (name | 'auto' | None) and options['vendor_path']."""
        extra = options.get("vendor_path") or get_settings().vendor_path
        name = options.get("vendor")
        if name and name != "auto":
            return get_vendor(name, extra)
        return detect_vendor(payload, extra)

    def parse(self, payload: bytes, options: dict | None = None) -> ParseResult:
        """Split the envelope into HOSO records; decode and validate each one independently."""
        options = options or {}
        result = ParseResult()
        payload = maybe_unwrap_base64(payload)
        try:
            vendor = self._vendor(payload, options)
        except ValueError as exc:
            result.errors.append(RecordError("options/vendor", str(exc)))
            return result
        try:
            env = read_envelope(payload)
        except UnsafeXml as exc:
            why = msg("refused: {detail}", detail=exc.message or str(exc))
            result.errors.append(RecordError.of(why, "file"))
            return result
        except (BadXml, ValueError) as exc:
            why = exc.message if isinstance(exc, Problem) and exc.message else None
            result.errors.append(RecordError.of(why, "file") if why else RecordError("file", str(exc)))
            return result
        if not env.hosos:
            result.errors.append(
                RecordError.of(msg("no HOSO in the envelope"), "DANHSACHHOSO", field="DANHSACHHOSO")
            )
            return result
        if env.declared_count is not None and env.declared_count != len(env.hosos):
            result.errors.append(
                RecordError.of(
                    msg(
                        "declares {declared} HOSO, file holds {count}",
                        declared=env.declared_count,
                        count=len(env.hosos),
                    ),
                    "THONGTINHOSO/SOLUONGHOSO",
                    severity="warning",
                    field="SOLUONGHOSO",
                )
            )
        single = len(env.hosos) == 1
        check = bool(options.get("check", False))
        icd10_path = get_settings().icd10_path
        for i, hoso in enumerate(env.hosos, start=1):
            data = decode_hoso(env, i, hoso, vendor)
            validate(data, vendor, icd10_path)
            if check and not data.errors:
                _add_check_warnings(data)
            key = data.ma_lk or f"HOSO[{i}]"
            for e in data.errors + data.warnings:
                e.record_key = e.record_key or key
            rec_payload = payload if single else single_hoso_payload(env, hoso)
            result.records.append(
                SourceRecord(
                    key=key, payload=rec_payload, data=data, meta={"vendor": vendor.name, "index": i}
                )
            )
        return result

    def facility_of(self, record: SourceRecord) -> str | None:
        """The record's facility: XML1 MA_CSKCB, else the envelope's MACSKCB (as `to_fhir` uses them)."""
        data: HosoData = record.data
        rows = data.tables.get("XML1") or [{}]
        return (rows[0].get("MA_CSKCB") or data.facility or "").strip() or None

    def to_fhir(self, record: SourceRecord, options: dict | None = None) -> MappedRecord:
        """Map one decoded HOSO to a transaction Bundle of PUTs with deterministic ids."""
        options = options or {}
        data: HosoData = record.data
        if data.errors:
            return MappedRecord(record.key, None, list(data.errors), list(data.warnings))
        warnings = list(data.warnings)
        row1 = data.tables["XML1"][0]
        settings = get_settings()
        try:
            vendor = get_vendor(record.meta.get("vendor"), options.get("vendor_path") or settings.vendor_path)
        except ValueError:
            vendor = get_vendor(None)
        facility = row1.get("MA_CSKCB") or data.facility or vendor.facility.get("code")
        if not facility:
            return MappedRecord(
                record.key,
                None,
                [
                    RecordError.of(
                        msg("no facility code (MA_CSKCB / MACSKCB)"),
                        "XML1/TONG_HOP/MA_CSKCB",
                        record.key,
                        table="XML1",
                        stt=row1.get("STT"),
                        field="MA_CSKCB",
                    )
                ],
                warnings,
            )
        profile = options.get("profile_set") or settings.profile_set
        try:
            bundle = build_bundle(
                data,
                facility,
                vendor,
                profile,
                warnings,
                record.key,
                record.payload,
                options.get("source"),
                icd10_path=settings.icd10_path,
            )
        except Exception as exc:  # a mapping bug must reject this record only, never the file
            return MappedRecord(
                record.key,
                None,
                [
                    RecordError.of(
                        msg("mapping failed: {detail}", detail=f"{type(exc).__name__}: {exc}"),
                        "mapping",
                        record.key,
                    )
                ],
                warnings,
            )
        return MappedRecord(record.key, bundle, [], warnings, source_time=_visit_end(row1, vendor))


def _utf8_head(head: bytes) -> bytes:
    """The first bytes as UTF-8 when the file was saved as UTF-16 (with or without a BOM): the parser
    reads such files, so detection must too (they were refused as "no adapter" before: parser fuzz)."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        codec = "utf-16"
    elif len(head) > 1 and head[0] == 0 and head[1] != 0:
        codec = "utf-16-be"
    elif len(head) > 1 and head[0] != 0 and head[1] == 0:
        codec = "utf-16-le"
    else:
        return head
    return head[: len(head) // 2 * 2].decode(codec, "ignore").encode("utf-8")


def _add_check_warnings(data: HosoData) -> None:
    """The agency-style check's findings as warnings of an accepted record (`lienthong check` rules);
    a place ingest already warned about (same table, STT, field) is not reported twice."""
    seen = {(w.table, w.stt, w.field) for w in data.warnings}
    for w in to_record_warnings(check_hoso(data)):
        if (w.table, w.stt, w.field) not in seen:
            data.warnings.append(w)


def build_bundle(
    data: HosoData,
    facility: str,
    vendor: VendorProfile,
    profile: str,
    warnings: list[RecordError],
    key: str,
    payload: bytes = b"",
    source: dict | None = None,
    icd10_path: str | None = None,
) -> dict:
    """Run the table mappers in dependency order (patient → encounter → conditions → rows → papers)."""
    row1 = data.tables["XML1"][0]
    ctx = Ctx(facility, row1["MA_LK"], vendor, profile, icd10_path)
    ctx.xml1 = row1
    ctx.encounter_ref = "Encounter/" + deterministic_id("Encounter", facility, row1["MA_LK"])
    patient = map_patient(ctx, row1)
    coverages = map_coverages(ctx, row1, patient)
    # Conditions first so the Encounter can list them; the Encounter id is already known.
    diagnoses = map_conditions(ctx, row1)
    map_encounter(ctx, row1, diagnoses)
    map_xml1_observations(ctx, row1)
    spec = tables_config()["tables"]
    # Tables switched off in tables.yaml (`mapped: false`) are only archived and reported below.
    t = {loai: rows for loai, rows in data.tables.items() if spec[loai]["mapped"]}
    if t.get("XML2"):
        map_drugs(ctx, t["XML2"])
    orders = map_services(ctx, t["XML3"]) if t.get("XML3") else {}
    if t.get("XML4"):
        map_results(ctx, t["XML4"], orders)
    if t.get("XML5"):
        map_progress(ctx, t["XML5"])
    if t.get("XML6"):
        map_hiv_care(ctx, t["XML6"])
    if t.get("XML15"):
        map_tb_treatment(ctx, t["XML15"], with_hiv_table=bool(t.get("XML6")))
    if t.get("XML7"):
        map_discharge_paper(ctx, t["XML7"])
    if t.get("XML8"):
        map_summary(ctx, t["XML8"])
    if t.get("XML9"):
        map_birth_certificates(ctx, t["XML9"])
    if t.get("XML10"):
        map_pregnancy_leave(ctx, t["XML10"], data.raw.get("XML10", []))
    if t.get("XML11"):
        map_sick_leave(ctx, t["XML11"], data.raw.get("XML11", []))
    if t.get("XML12"):
        map_assessments(ctx, t["XML12"], data.raw.get("XML12", []))
    if t.get("XML13"):
        map_referral(ctx, t["XML13"])
    if t.get("XML14"):
        map_reexam(ctx, t["XML14"])
    elif row1.get("NGAY_TAI_KHAM"):
        map_reexam_dates(ctx, row1)
    map_conclusion(ctx, row1)
    if map_claim(ctx, row1, coverages, t) is None:
        warnings.append(
            RecordError(
                "XML1/TONG_HOP/MA_THE_BHYT",
                "không có thẻ BHYT: tổng chi phí XML1 không thành Claim, vẫn ở ChargeItem và tệp lưu trữ "
                "(no BHYT card: XML1 totals are not a Claim; they stay on the ChargeItems and in the archive)",
                key,
                "warning",
            )
        )
    for loai, rows in data.tables.items():
        if not spec[loai]["mapped"]:
            warnings.append(
                RecordError.of(
                    msg(
                        "{table} ({count} record(s)) is not mapped to FHIR; kept in the archived payload (inbox)",
                        table=loai,
                        count=len(rows),
                    ),
                    loai,
                    key,
                    "warning",
                    table=loai,
                )
            )
    map_provenance(ctx, payload, source, data.created)
    return ctx.bundle()


def _visit_end(row1: dict, vendor) -> str | None:
    """The export's own time: the settlement (NGAY_TTOAN), else discharge (NGAY_RA), else admission."""
    for name in ("NGAY_TTOAN", "NGAY_RA", "NGAY_VAO"):
        value = row1.get(name)
        if value:
            try:
                return to_datetime(value, vendor)
            except ValueError:
                continue
    return None

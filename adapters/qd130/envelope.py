"""Split a QĐ130 envelope into HOSO units and decode their base64 inner tables into row dicts."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from lxml import etree

from adapters.base import RecordError
from adapters.i18n import Problem, msg
from fhir_server.i18n import Msg
from mappings import load_yaml

from .vendors import VendorProfile
from .xmlsafe import BOM, BadXml, UnsafeXml, parse_xml, strip_bom


def tables_config() -> dict:
    """The table catalogue of mappings/qd130/tables.yaml."""
    return load_yaml("qd130/tables.yaml")


def _root_to_table() -> dict[str, str]:
    """Inner root / record element name → LOAIHOSO, for bare per-table files."""
    out: dict[str, str] = {}
    for loai, spec in tables_config()["tables"].items():
        out.setdefault(spec["root"], loai)
        out.setdefault(spec["record"], loai)
    return out


@dataclass
class Envelope:
    """The envelope-level facts shared by every HOSO of one file."""

    root: str
    facility: str | None
    created: str | None
    hosos: list[etree._Element]
    declared_count: int | None
    bare_table: str | None = None  # LOAIHOSO when the file is a bare inner table, no envelope


@dataclass
class HosoData:
    """One decoded episode: rows per table (field → text), plus what went wrong."""

    index: int
    facility: str | None
    created: str | None
    tables: dict[str, list[dict]] = field(default_factory=dict)
    raw: dict[str, list[bytes]] = field(default_factory=dict)  # decoded inner documents, by LOAIHOSO
    errors: list[RecordError] = field(default_factory=list)
    warnings: list[RecordError] = field(default_factory=list)
    legacy_4210: bool = False

    @property
    def ma_lk(self) -> str | None:
        """The episode key from XML1, if present."""
        rows = self.tables.get("XML1")
        return rows[0].get("MA_LK") if rows else None


def maybe_unwrap_base64(payload: bytes) -> bytes:
    """Submission APIs base64 the whole envelope (fileHSBase64); decode once if so."""
    head = strip_bom(payload[:64])
    if head.startswith(b"<"):
        return payload
    try:
        decoded = base64.b64decode(b"".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return payload
    if strip_bom(decoded[:64]).startswith(b"<"):
        return decoded
    return payload


def read_envelope(payload: bytes) -> Envelope:
    """Parse the outer document; raises UnsafeXml/BadXml/ValueError with a file-level reason."""
    root = parse_xml(payload)
    cfg = tables_config()
    tag = root.tag
    if tag in cfg["envelope_roots"]:
        info = root.find("THONGTINHOSO")
        if info is None:
            raise Problem(msg("{root}: missing THONGTINHOSO", root=tag))
        count_text = (info.findtext("SOLUONGHOSO") or "").strip()
        return Envelope(
            root=tag,
            facility=(root.findtext("THONGTINDONVI/MACSKCB") or "").strip() or None,
            created=(info.findtext("NGAYLAP") or "").strip() or None,
            hosos=list(info.iter("HOSO")),
            declared_count=int(count_text) if count_text.isdigit() else None,
        )
    loai = _root_to_table().get(tag)
    if loai:
        return Envelope(
            root=tag, facility=None, created=None, hosos=[root], declared_count=None, bare_table=loai
        )
    raise Problem(
        msg(
            "unsupported document type: root element <{root}> is not a QĐ130 envelope ({roots}) nor a QĐ130 table",
            root=tag,
            roots=", ".join(cfg["envelope_roots"]),
        )
    )


def _rows(root: etree._Element, record_tag: str, vendor: VendorProfile, loai: str) -> list[dict]:
    """Collect records by element name into dicts of non-empty stripped text values."""
    recs = [root] if root.tag == record_tag else root.iter(record_tag)
    empties = vendor.empty_values
    maps = vendor.code_maps
    out = []
    for rec in recs:
        row: dict = {}
        for child in rec:
            text = child.text
            if text is None:
                continue
            text = text.strip()
            if text in empties:
                continue
            tag = child.tag
            if maps and tag in maps:
                text = maps[tag].get(text, text)
            row[tag] = text
        out.append(row)
    if loai == "XML1" and vendor.defaults:
        for row in out:
            for k, v in vendor.defaults.items():
                row.setdefault(k, v)
    return out


def decode_base64(text: str) -> bytes:
    """Base64 text (line breaks/spaces tolerated) → bytes with a leading BOM removed."""
    raw = base64.b64decode("".join(text.split()), validate=True)
    if raw.startswith(BOM):
        raw = raw[len(BOM) :]
    return raw


def decode_hoso(env: Envelope, index: int, hoso: etree._Element, vendor: VendorProfile) -> HosoData:
    """Decode every FILEHOSO of one HOSO; problems become errors of this HOSO only."""
    cfg = tables_config()["tables"]
    data = HosoData(index=index, facility=env.facility, created=env.created)
    if env.bare_table:
        loai = env.bare_table
        spec = cfg[loai]
        data.tables[loai] = _rows(hoso, spec["record"], vendor, loai)
        data.raw[loai] = [etree.tostring(hoso, encoding="utf-8", xml_declaration=False, with_tail=False)]
        data.warnings.append(
            RecordError.of(
                msg("bare table without GIAMDINHHS envelope: envelope fields absent"),
                loai,
                severity="warning",
                table=loai,
            )
        )
        _legacy(data)
        return data
    for fpos, fh in enumerate(hoso.iter("FILEHOSO"), start=1):
        loai = (fh.findtext("LOAIHOSO") or "").strip().upper()
        where = f"HOSO[{index}]/FILEHOSO[{fpos}]"
        if not loai:
            data.errors.append(RecordError.of(msg("missing LOAIHOSO"), f"{where}/LOAIHOSO", field="LOAIHOSO"))
            continue
        spec = cfg.get(loai)
        if spec is None:
            data.errors.append(
                RecordError.of(
                    msg("unknown LOAIHOSO {value!r} (expected XML1..XML15)", value=loai),
                    f"{where}/LOAIHOSO",
                    field="LOAIHOSO",
                )
            )
            continue
        text = fh.findtext("NOIDUNGFILE")
        if not text or not text.strip():
            data.errors.append(_file_error(msg("empty NOIDUNGFILE"), loai))
            continue
        try:
            inner_bytes = decode_base64(text)
        except (binascii.Error, ValueError) as exc:
            data.errors.append(_file_error(msg("bad base64: {detail}", detail=str(exc)), loai))
            continue
        try:
            inner = parse_xml(inner_bytes)
        except UnsafeXml as exc:
            data.errors.append(_file_error(msg("refused: {detail}", detail=str(exc)), loai))
            continue
        except BadXml as exc:
            data.errors.append(_file_error(msg("decoded content is {detail}", detail=str(exc)), loai))
            continue
        if inner.tag not in (spec["root"], spec["record"]) and not _is_wrapper(inner, spec):
            other = _root_to_table().get(inner.tag)
            reason = (
                msg(
                    "LOAIHOSO {table} holds <{root}> (a {other} document)",
                    table=loai,
                    root=inner.tag,
                    other=other,
                )
                if other
                else msg(
                    "LOAIHOSO {table}: unexpected root <{root}>, expected <{expected}>",
                    table=loai,
                    root=inner.tag,
                    expected=spec["root"],
                )
            )
            data.errors.append(_file_error(reason, loai))
            continue
        data.tables.setdefault(loai, []).extend(_rows(inner, spec["record"], vendor, loai))
        data.raw.setdefault(loai, []).append(inner_bytes)
    _legacy(data)
    return data


def _file_error(message: Msg, loai: str) -> RecordError:
    """An error about one embedded table file (its NOIDUNGFILE)."""
    return RecordError.of(message, f"{loai}/NOIDUNGFILE", table=loai, field="NOIDUNGFILE")


def _is_wrapper(inner: etree._Element, spec: dict) -> bool:
    """Legacy files use the DSACH_* list wrapper as their root; accept it when it holds records."""
    return inner.tag.startswith("DSACH") and inner.find(spec["record"]) is not None


def _legacy(data: HosoData) -> None:
    """Rename QĐ 4210 field names to QĐ 130 ones (accepted with a warning)."""
    xml1 = data.tables.get("XML1")
    if not xml1:
        return
    row = xml1[0]
    if "MA_THE_BHYT" in row or "MA_BENH_CHINH" in row:
        return
    if not ("MA_THE" in row or "MA_BENH" in row):
        return
    data.legacy_4210 = True
    aliases = tables_config().get("legacy_4210_aliases", {})
    for loai, amap in aliases.items():
        for r in data.tables.get(loai, []):
            for old, new in amap.items():
                if old in r and new not in r:
                    r[new] = r.pop(old)
    data.warnings.append(
        RecordError.of(
            msg(
                "legacy QĐ 4210 layout: field names mapped to QĐ 130 via "
                "legacy_4210_aliases; fields without a QĐ 130 equivalent are ignored"
            ),
            "XML1",
            row.get("MA_LK"),
            "warning",
            table="XML1",
        )
    )


def single_hoso_payload(env: Envelope, hoso: etree._Element) -> bytes:
    """A standalone envelope holding just this HOSO, enough to replay the record alone."""
    # The envelope texts were unescaped by the parser: written back raw, an "&" or "<" in MACSKCB
    # made every dead letter of the file unreadable on replay (found by the parser fuzz run).
    parts = [
        b'<?xml version="1.0" encoding="utf-8"?>\n<',
        env.root.encode(),
        b"><THONGTINDONVI><MACSKCB>",
        escape(env.facility or "").encode(),
        b"</MACSKCB></THONGTINDONVI><THONGTINHOSO><NGAYLAP>",
        escape(env.created or "").encode(),
        b"</NGAYLAP><SOLUONGHOSO>1</SOLUONGHOSO><DANHSACHHOSO>",
        etree.tostring(hoso, encoding="utf-8", xml_declaration=False, with_tail=False),
        b"</DANHSACHHOSO></THONGTINHOSO></",
        env.root.encode(),
        b">",
    ]
    return b"".join(parts)

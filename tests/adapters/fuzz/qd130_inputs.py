"""Hypothesis strategies for hostile QĐ130 files, built from the repository's own samples.

A case is a GIAMDINHHS envelope holding a *victim* HOSO (from one sample) that gets one to three
structure-aware mutations — a field value, a tag, a row, the base64 wrapper, the inner encoding, DTD /
entity attacks, deep nesting, truncation — and, for mutations confined to the victim, an untouched
*witness* HOSO of another person that must still be accepted. File-level mutations (BOM, UTF-16,
truncation, a DOCTYPE on the envelope…) hit the whole file. Used by test_parser_fuzz.py and
`bench/fuzz_parsers.py`."""

from __future__ import annotations

import base64
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from hypothesis import strategies as st
from lxml import etree

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "qd130"
MARK = b"FUZZMARKQD130"

# Generated patient data put into the victim: it must never reach a log line.
NAMES = ["PHẠM THỊ MỸ DUNG", "LÊ VĂN THẮNG", "NGUYỄN THỊ HỒNG NHUNG", "ĐẶNG QUỐC HUY", "VŨ THỊ THU HƯỜNG"]
CCCDS = ["079072012345", "001072067890", "048072011122", "092072033344", "036072099988"]


@dataclass
class Hoso:
    """One HOSO as (LOAIHOSO, inner XML bytes) pairs."""

    files: list[tuple[str, bytes]]

    @property
    def ma_lk(self) -> str:
        """MA_LK of XML1."""
        return etree.fromstring(dict(self.files)["XML1"]).findtext("MA_LK") or ""


@cache
def _sample_hosos(name: str) -> tuple[str, tuple[tuple[tuple[str, bytes], ...], ...]]:
    root = etree.parse(str(SAMPLES / name)).getroot()
    facility = root.findtext("THONGTINDONVI/MACSKCB") or ""
    hosos = []
    for h in root.iter("HOSO"):
        files = tuple(
            (fh.findtext("LOAIHOSO") or "", base64.b64decode(fh.findtext("NOIDUNGFILE") or ""))
            for fh in h.iter("FILEHOSO")
        )
        hosos.append(files)
    return facility, tuple(hosos)


def victims() -> list[Hoso]:
    """HOSO the fuzzer mutates: the outpatient and the inpatient visit of the samples."""
    return [
        Hoso(list(_sample_hosos("79001-ngoai-tru.xml")[1][0])),
        Hoso(list(_sample_hosos("01001-noi-tru.xml")[1][0])),
    ]


def witness() -> Hoso:
    """A valid HOSO of another person (first of the two-HOSO sample): it must go through."""
    return Hoso(list(_sample_hosos("79001-hai-ho-so-mot-loi.xml")[1][0]))


def envelope(hosos: list[Hoso], facility: str = "79001", count: str | None = None, raw_b64=None) -> bytes:
    """A GIAMDINHHS envelope; raw_b64 maps (hoso index, file index) to a NOIDUNGFILE text override."""
    raw_b64 = raw_b64 or {}
    parts = [
        b'<?xml version="1.0" encoding="utf-8"?>\n<GIAMDINHHS><THONGTINDONVI><MACSKCB>',
        facility.encode(),
        b"</MACSKCB></THONGTINDONVI><THONGTINHOSO><NGAYLAP>20240712</NGAYLAP><SOLUONGHOSO>",
        (count if count is not None else str(len(hosos))).encode(),
        b"</SOLUONGHOSO><DANHSACHHOSO>",
    ]
    for hi, h in enumerate(hosos):
        parts.append(b"<HOSO>")
        for fi, (loai, inner) in enumerate(h.files):
            text = raw_b64.get((hi, fi), base64.b64encode(inner))
            parts += [b"<FILEHOSO><LOAIHOSO>", loai.encode(), b"</LOAIHOSO><NOIDUNGFILE>", text]
            parts.append(b"</NOIDUNGFILE></FILEHOSO>")
        parts.append(b"</HOSO>")
    parts.append(b"</DANHSACHHOSO></THONGTINHOSO></GIAMDINHHS>")
    return b"".join(parts)


def _nf(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from(["NFC", "NFD", "NFKC", "NFKD"]).map(lambda f: unicodedata.normalize(f, text))


# Raw bytes spliced into an inner XML field (so they may also break well-formedness on purpose).
FIELD_VALUES = st.one_of(
    st.sampled_from(
        [
            b"",
            b"   ",
            b"\x00",
            b"NGUY\x01\x02N",
            b"\x1b[31m",
            b"20251399",
            b"202513450800",
            b"000000000000",
            b"99999999999999",
            b"2024-07-11",
            b"-1",
            b"1e400",
            b"NaN",
            b"12,5",
            b"1.000.000",
            b"m\xc6\xb0\xe1\xbb\x9di",
            b"9" * 400,
            b"A" * 70_000,
            "Ω".encode() * 20_000,
            b"\xff\xfe\xfd",
            b"\xc3",
            b"&amp;&lt;&gt;",
            b"&xxe;",
            b"&#0;",
            b"&#x1F600;",
            b"<![CDATA[<b>]]>",
            b"<HO_TEN>",
            b"]]>",
            b"<X>" * 300 + b"</X>" * 300,
        ]
    ),
    st.sampled_from(["Nguyễn Văn Ánh", "Hồ Chí Minh", "Thừa Thiên Huế", "ĐẶNG THỊ Ỷ"])
    .flatmap(_nf)
    .map(str.encode),
    st.text(max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=20),
    st.integers(-(2**70), 2**70).map(lambda i: str(i).encode()),
)

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE TONG_HOP [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&%s;" % bytes([97 + i])) * 10) for i in range(8))
    + b"]>\n<TONG_HOP><MA_LK>&i;</MA_LK></TONG_HOP>"
)
ATTACKS = [
    BILLION_LAUGHS,
    b'<?xml version="1.0"?><!DOCTYPE TONG_HOP [<!ENTITY x SYSTEM "file:///etc/passwd">]><TONG_HOP><HO_TEN>&x;</HO_TEN></TONG_HOP>',
    b'<?xml version="1.0"?><!DOCTYPE TONG_HOP SYSTEM "http://127.0.0.1:9/x.dtd"><TONG_HOP/>',
    b'<?xml version="1.0"?><!DOCTYPE TONG_HOP [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p">%p;]><TONG_HOP/>',
    b"<!-- c --><!DOCTYPE TONG_HOP [<!ELEMENT TONG_HOP ANY>]><TONG_HOP/>",
    b'<?xml version="1.0"?><TONG_HOP xmlns:xi="http://www.w3.org/2001/XInclude">'
    b'<xi:include href="/etc/passwd" parse="text"/></TONG_HOP>',
    b"<TONG_HOP>" + b"<A>" * 5000 + b"</A>" * 5000 + b"</TONG_HOP>",
    b"<TONG_HOP>" + b"<MA_LK>1</MA_LK>" * 20_000 + b"</TONG_HOP>",
    b"<TONG_HOP " + b" ".join(b'a%d="x"' % i for i in range(3000)) + b"/>",
]


@dataclass
class Qd130Case:
    """One generated file, what was done to it and the facts the properties need."""

    payload: bytes
    steps: list[str]
    witness_key: str | None  # MA_LK of a HOSO that must be accepted (None: the whole file is hit)
    victim_key: str
    names: list[str] = field(default_factory=list)  # generated patient data (never in logs)
    dtd: bool = False  # a DTD/entity declaration was planted: it must be refused, not expanded

    def __repr__(self) -> str:  # hypothesis prints this on failure
        return f"Qd130Case(steps={self.steps}, head={self.payload[:200]!r}, size={len(self.payload)})"


def _inner_with(inner: bytes, tag: str, occurrence: int, value: bytes) -> bytes | None:
    """The inner document with the text of the n-th `tag` element replaced by raw bytes."""
    root = etree.fromstring(inner)
    hits = list(root.iter(tag))
    if not hits:
        return None
    hits[occurrence % len(hits)].text = MARK.decode()
    return etree.tostring(root, xml_declaration=True, encoding="utf-8").replace(MARK, value, 1)


def _parses(inner: bytes) -> bool:
    try:
        etree.fromstring(inner)
        inner.decode("utf-8")
    except (etree.XMLSyntaxError, UnicodeDecodeError, ValueError):
        return False
    return True


def _fields(inner: bytes) -> list[str]:
    root = etree.fromstring(inner)
    return sorted({el.tag for el in root.iter() if len(el) == 0 and isinstance(el.tag, str)})


def _record_tags(inner: bytes) -> list[str]:
    root = etree.fromstring(inner)
    return sorted({el.tag for el in root.iter() if len(el) > 0 and el is not root})


@st.composite
def qd130_case(draw) -> Qd130Case:
    """A hostile QĐ130 file (see the module docstring)."""
    victim = draw(st.sampled_from(victims()))
    witness_hoso = witness()
    name, cccd = draw(st.sampled_from(NAMES)), draw(st.sampled_from(CCCDS))
    steps: list[str] = []
    files = list(victim.files)
    # The victim always carries generated patient data, so the log check has something to look for.
    x1 = dict(files)["XML1"]
    x1 = _inner_with(x1, "HO_TEN", 0, name.encode()) or x1
    x1 = _inner_with(x1, "SO_CCCD", 0, cccd.encode()) or x1
    files = [(loai, x1 if loai == "XML1" else inner) for loai, inner in files]
    victim_key = Hoso(files).ma_lk
    raw_b64: dict = {}
    count = None
    file_level: list[str] = []
    envelope_hit = False
    dtd = False
    facility = "79001"
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "value", "value", "value", "value", "drop_tag", "dup_row", "dup_file", "drop_file",
                    "bad_base64", "inner_encoding", "attack", "truncate_inner", "loaihoso", "count",
                    "facility", "file_level",
                ]
            )
        )  # fmt: skip
        fi = draw(st.integers(0, len(files) - 1))
        loai, inner = files[fi]
        if kind in ("value", "drop_tag", "dup_row", "inner_encoding") and not _parses(inner):
            kind = "truncate_inner"  # an earlier step broke this file: only byte-level mutations apply
        if kind == "value":
            tag = draw(st.sampled_from(_fields(inner)))
            value = draw(FIELD_VALUES)
            new = _inner_with(inner, tag, draw(st.integers(0, 5)), value)
            if new is not None:
                files[fi] = (loai, new)
                steps.append(f"{loai}/{tag}={value[:40]!r}")
        elif kind == "drop_tag":
            root = etree.fromstring(inner)
            tag = draw(st.sampled_from(_fields(inner)))
            for el in list(root.iter(tag))[:1]:
                if el.getparent() is not None:
                    el.getparent().remove(el)
            files[fi] = (loai, etree.tostring(root, xml_declaration=True, encoding="utf-8"))
            steps.append(f"{loai}: drop <{tag}>")
        elif kind == "dup_row":
            root = etree.fromstring(inner)
            recs = _record_tags(inner) or [root.tag]
            tag = draw(st.sampled_from(recs))
            el = next(root.iter(tag))
            times = draw(st.sampled_from([1, 2, 50]))
            for _ in range(times):
                if el.getparent() is not None:
                    el.addnext(etree.fromstring(etree.tostring(el)))
            files[fi] = (loai, etree.tostring(root, xml_declaration=True, encoding="utf-8"))
            steps.append(f"{loai}: duplicate <{tag}> x{times}")
        elif kind == "dup_file":
            files.append(files[fi])
            steps.append(f"duplicate FILEHOSO {loai}")
        elif kind == "drop_file":
            if len(files) > 1:
                del files[fi]
                raw_b64 = {}
                steps.append(f"drop FILEHOSO {loai}")
        elif kind == "bad_base64":
            good = base64.b64encode(inner)
            how = draw(st.sampled_from(["cut", "char", "pad", "empty", "spaces", "urlsafe", "not"]))
            bad = {
                "cut": good[: len(good) - 3],
                "char": good[:10] + b"*" + good[11:],
                "pad": good + b"=====",
                "empty": b"",
                "spaces": b"\n ".join(good[i : i + 7] for i in range(0, len(good), 7)),
                "urlsafe": base64.urlsafe_b64encode(inner.replace(b"<", b"<\xfb\xff")),
                "not": b"&lt;TONG_HOP/&gt;",
            }[how]
            raw_b64[(0, fi)] = bad
            steps.append(f"{loai}: base64 {how}")
        elif kind == "inner_encoding":
            how = draw(
                st.sampled_from(["cp1258", "latin-1", "utf-16", "utf-16-declared", "win1258-declared"])
            )
            text = inner.decode("utf-8")
            if how == "cp1258":
                new = text.encode("cp1258", "replace")
            elif how == "latin-1":
                new = text.encode("latin-1", "replace")
            elif how == "utf-16":
                new = text.encode("utf-16")
            elif how == "utf-16-declared":
                new = text.replace("encoding='utf-8'", "encoding='utf-16'").encode("utf-16")
            else:
                new = text.replace("encoding='utf-8'", "encoding='windows-1258'").encode("cp1258", "replace")
            files[fi] = (loai, new)
            steps.append(f"{loai}: inner encoding {how}")
        elif kind == "attack":
            attack = draw(st.sampled_from(ATTACKS))
            dtd = dtd or b"<!DOCTYPE" in attack
            files[fi] = (loai, attack)
            steps.append(f"{loai}: attack {attack[:60]!r}")
        elif kind == "truncate_inner":
            cut = draw(st.integers(0, max(0, len(inner) - 1)))
            files[fi] = (loai, inner[:cut])
            steps.append(f"{loai}: truncated at {cut}")
        elif kind == "loaihoso":
            new_loai = draw(st.sampled_from(["", "XML16", "xml2", " XML3 ", "XML1", "TONG_HOP", "XML\x00"]))
            files[fi] = (new_loai, inner)
            envelope_hit = envelope_hit or "\x00" in new_loai  # a NUL breaks the envelope itself
            steps.append(f"LOAIHOSO {loai} -> {new_loai!r}")
        elif kind == "facility":
            facility = draw(
                st.sampled_from(["", "&lt;b&gt;", "A&amp;B", "BV &amp; SYT", "7" * 500, "79\x00001"])
            )
            envelope_hit = envelope_hit or "\x00" in facility
            steps.append(f"MACSKCB={facility[:20]!r}")
        elif kind == "count":
            count = draw(st.sampled_from(["0", "1", "99", "-1", "abc", "", "1" * 40]))
            steps.append(f"SOLUONGHOSO={count!r}")
        else:
            file_level.append(
                draw(
                    st.sampled_from(
                        [
                            "bom", "double_bom", "utf16", "utf16_declared", "truncate", "doctype", "entity_envelope",
                            "base64_envelope", "no_envelope", "deep_envelope", "garbage_tail", "leading_space",
                            "empty",
                        ]
                    )
                )
            )  # fmt: skip
    hosos = [Hoso(files), witness_hoso]
    payload = envelope(hosos, facility, count, raw_b64)
    for how in file_level:
        steps.append(f"file: {how}")
        payload = _file_level(draw, payload, how)
    return Qd130Case(
        payload,
        steps,
        None if envelope_hit or (file_level and not _harmless(file_level)) else witness_hoso.ma_lk,
        victim_key,
        [name, cccd],
        # Checked only when it was the single mutation: a later one may cut or drop the declaration.
        (dtd or "doctype" in file_level) and len(steps) == 1,
    )


# Whole-file changes a receiver must take in its stride (one at a time): the witness still goes through.
HARMLESS = {"bom", "double_bom", "utf16", "utf16_declared", "base64_envelope", "leading_space"}


def _harmless(file_level: list[str]) -> bool:
    return len(file_level) == 1 and file_level[0] in HARMLESS


def _file_level(draw, payload: bytes, how: str) -> bytes:
    """A mutation of the whole file's bytes."""
    if how == "bom":
        return b"\xef\xbb\xbf" + payload
    if how == "double_bom":
        return b"\xef\xbb\xbf\xef\xbb\xbf" + payload
    if how == "utf16":
        return payload.decode("utf-8", "replace").encode("utf-16")
    if how == "utf16_declared":
        return (
            payload.decode("utf-8", "replace")
            .replace('encoding="utf-8"', 'encoding="utf-16"')
            .encode("utf-16")
        )
    if how == "truncate":
        return payload[: draw(st.integers(0, max(0, len(payload) - 1)))]
    if how == "doctype":
        return payload.replace(
            b"<GIAMDINHHS>",
            b'<!DOCTYPE GIAMDINHHS [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<GIAMDINHHS>',
            1,
        )
    if how == "entity_envelope":
        return payload.replace(b"<MACSKCB>", b"<MACSKCB>&x;", 1)
    if how == "base64_envelope":
        return base64.b64encode(payload)
    if how == "no_envelope":
        start = payload.find(b"<HOSO>")
        return payload[start:] if start >= 0 else payload
    if how == "deep_envelope":
        return payload.replace(b"<HOSO>", b"<HOSO>" + b"<HOSO>" * 400, 1).replace(
            b"</HOSO>", b"</HOSO>" * 401, 1
        )
    if how == "garbage_tail":
        return payload + b"\x00\x01<GIAMDINHHS>"
    if how == "leading_space":
        return b"\n\t  " + payload
    if how == "empty":
        return b""
    return payload

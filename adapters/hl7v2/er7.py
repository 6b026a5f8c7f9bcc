"""Tolerant ER7 reader: bytes -> decoded text -> segments with on-demand field/component access.

hl7apy builds a full object tree (about 13 ms for an 8-segment message on this machine), too slow for
an MLLP feed, so values are read with this small splitter; hl7apy supplies the version and structure
knowledge and an optional full tolerant parse (see validate.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from adapters.hl7v2.errors import DATA_TYPE_ERROR, REQUIRED_FIELD_MISSING, SEGMENT_SEQUENCE, reject
from mappings import load_yaml

_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")


@dataclass(frozen=True)
class Encoding:
    """The separators declared in MSH-1/MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


def _charset_table() -> dict[str, str]:
    return {str(k).upper(): v for k, v in load_yaml("hl7v2/tables.yaml")["charsets"].items()}


def _find_msh18(raw: bytes) -> str | None:
    """Read MSH-18 from the raw bytes (separators are ASCII, so byte splitting is safe)."""
    start = raw.find(b"MSH")
    if start < 0 or len(raw) < start + 4:
        return None
    sep = raw[start + 3 : start + 4]
    end = len(raw)
    for term in (b"\r", b"\n"):
        pos = raw.find(term, start)
        if 0 <= pos < end:
            end = pos
    parts = raw[start:end].split(sep)
    # parts[0] is "MSH", parts[n-1] is MSH-n for n >= 2.
    if len(parts) >= 18:
        value = parts[17].split(b"~")[0].strip()
        return value.decode("ascii", "replace") or None
    return None


def decode(raw: bytes, default_charsets: tuple[str, ...] = ("utf-8", "cp1258")) -> tuple[str, str]:
    """Decode a message using MSH-18; without it try UTF-8 then Windows-1258 (Vietnamese). Returns (text, codec)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    declared = _find_msh18(raw)
    if declared:
        codec = _charset_table().get(declared.upper())
        if codec is None:
            raise reject(DATA_TYPE_ERROR, "MSH-18", f"unsupported character set {declared!r}")
        try:
            return raw.decode(codec), codec
        except UnicodeDecodeError as exc:
            raise reject(
                DATA_TYPE_ERROR, "MSH-18", f"bytes at offset {exc.start} are not valid {declared}"
            ) from None
    for codec in default_charsets:
        try:
            return raw.decode(codec), codec
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


class Segment:
    """One segment; field numbers follow the standard (MSH-1 is the field separator itself)."""

    __slots__ = ("name", "index", "_fields", "_enc", "_esc")

    def __init__(self, name: str, fields: list[str], enc: Encoding, index: int = 0):
        self.name = name
        self.index = index  # position in the message (MSH = 0): names the segment in warnings
        self._fields = fields
        self._enc = enc
        self._esc = enc.escape

    def raw(self, n: int) -> str:
        """The raw (still escaped) text of field n, '' when absent."""
        f = self._fields
        return f[n] if n < len(f) else ""

    def reps(self, n: int) -> list[str]:
        """Raw repetitions of field n (empty list when the field is empty)."""
        value = self.raw(n)
        if not value:
            return []
        if self.name == "MSH" and n == 2:
            return [value]
        return [r for r in value.split(self._enc.repetition)]

    def comps(self, n: int, rep: int = 0) -> list[str]:
        """Unescaped components (first subcomponent of each) of one repetition of field n."""
        reps = self.reps(n)
        if rep >= len(reps):
            return []
        return split_components(reps[rep], self._enc)

    def get(self, n: int, comp: int = 1, rep: int = 0, sub: int = 1) -> str:
        """One unescaped value: field n, component, repetition (0-based), subcomponent; '' when absent."""
        reps = self.reps(n)
        if rep >= len(reps):
            return ""
        comps = reps[rep].split(self._enc.component)
        if comp > len(comps):
            return ""
        subs = comps[comp - 1].split(self._enc.subcomponent)
        if sub > len(subs):
            return ""
        return unescape(subs[sub - 1], self._enc).strip()

    def text(self, n: int) -> str:
        """The whole field unescaped as text (for ST/TX/FT values that may contain separators)."""
        return unescape(self.raw(n), self._enc)

    @property
    def encoding(self) -> Encoding:
        """The separators of the message this segment belongs to."""
        return self._enc

    def __repr__(self) -> str:
        return f"<Segment {self.name}>"


def split_components(rep: str, enc: Encoding) -> list[str]:
    """Split one repetition into unescaped components (subcomponents beyond the first are dropped)."""
    return [unescape(c.split(enc.subcomponent)[0], enc).strip() for c in rep.split(enc.component)]


def subcomponents(component_raw: str, enc: Encoding) -> list[str]:
    """Split one raw component into unescaped subcomponents."""
    return [unescape(s, enc).strip() for s in component_raw.split(enc.subcomponent)]


_FORMAT_ESCAPES = {".br": "\n", ".sp": "\n", ".sk": " "}


def unescape(value: str, enc: Encoding) -> str:
    """Resolve \\F\\ \\S\\ \\T\\ \\R\\ \\E\\, \\Xhh\\ (UTF-8 hex) and formatting escapes."""
    esc = enc.escape
    if esc not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        end = value.find(esc, i + 1)
        if end < 0:  # lone escape char: keep it literally (real-world senders do this)
            out.append(value[i:])
            break
        seq = value[i + 1 : end]
        i = end + 1
        if seq == "F":
            out.append(enc.field)
        elif seq == "S":
            out.append(enc.component)
        elif seq == "T":
            out.append(enc.subcomponent)
        elif seq == "R":
            out.append(enc.repetition)
        elif seq == "E":
            out.append(esc)
        elif seq[:1] == "X" and len(seq) > 1:
            try:
                out.append(bytes.fromhex(seq[1:]).decode("utf-8", "replace"))
            except ValueError:
                out.append(esc + seq + esc)
        elif seq in ("H", "N") or seq[:1] == ".":
            # Formatting commands of FT: keep line breaks, drop the rest.
            out.append(_FORMAT_ESCAPES.get(seq[:3], ""))
        else:
            out.append(esc + seq + esc)
    return "".join(out)


@dataclass
class Message:
    """A decoded message: its segments in order plus the MSH facts every step needs."""

    text: str
    segments: list[Segment]
    encoding: Encoding
    charset: str

    @property
    def msh(self) -> Segment:
        """The MSH segment (always first)."""
        return self.segments[0]

    def first(self, name: str) -> Segment | None:
        """First segment with this name, or None."""
        for seg in self.segments:
            if seg.name == name:
                return seg
        return None

    def all(self, name: str) -> list[Segment]:
        """All segments with this name, in order."""
        return [s for s in self.segments if s.name == name]

    @property
    def control_id(self) -> str:
        """MSH-10."""
        return self.msh.get(10)

    @property
    def version(self) -> str:
        """MSH-12 version id (first component)."""
        return self.msh.get(12)

    @property
    def message_code(self) -> str:
        """MSH-9.1, e.g. ADT."""
        return self.msh.get(9, 1).upper()

    @property
    def trigger(self) -> str:
        """MSH-9.2, e.g. A01."""
        return self.msh.get(9, 2).upper()

    @property
    def structure(self) -> str:
        """MSH-9.3, e.g. ADT_A01 (may be empty in v2.3)."""
        return self.msh.get(9, 3).upper()

    @property
    def sending_facility(self) -> str:
        """MSH-4.1 (namespace id)."""
        return self.msh.get(4)


def split_segments(text: str) -> list[str]:
    """Split on any of \\r, \\n, \\r\\n and drop empty lines and MLLP framing residue."""
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return [s.strip("\x0b\x1c\x00 \t") for s in text.split("\r") if s.strip("\x0b\x1c\x00 \t")]


def read_message(raw: bytes | str) -> Message:
    """Decode and tokenise one ER7 message; raise Hl7Error (AR) when it is not a readable HL7 v2 message."""
    if isinstance(raw, bytes):
        text, codec = decode(raw)
    else:
        text, codec = raw, "str"
    text = text.lstrip("\ufeff\x0b \t\r\n")
    lines = split_segments(text)
    if not lines or not lines[0].startswith("MSH"):
        raise reject(REQUIRED_FIELD_MISSING, "MSH", "message does not start with an MSH segment")
    msh_line = lines[0]
    if len(msh_line) < 8:
        raise reject(REQUIRED_FIELD_MISSING, "MSH-2", "MSH segment too short to hold the encoding characters")
    field_sep = msh_line[3]
    enc_end = msh_line.find(field_sep, 4)
    enc_chars = msh_line[4:enc_end] if enc_end > 0 else msh_line[4:]
    if field_sep.isalnum() or len(enc_chars) < 4 or len(set(enc_chars[:4] + field_sep)) != 5:
        raise reject(DATA_TYPE_ERROR, "MSH-2", f"invalid encoding characters {field_sep + enc_chars!r}")
    enc = Encoding(
        field=field_sep,
        component=enc_chars[0],
        repetition=enc_chars[1],
        escape=enc_chars[2],
        subcomponent=enc_chars[3],
    )
    segments: list[Segment] = []
    for i, line in enumerate(lines):
        name = line[:3].upper()
        if not _SEGMENT_NAME.match(name) or (len(line) > 3 and line[3] != field_sep):
            raise reject(SEGMENT_SEQUENCE, f"segment {i + 1}", f"not an HL7 segment: {line[:12]!r}")
        parts = line.split(field_sep)
        if name == "MSH":
            # MSH-1 is the separator itself; parts[1] is MSH-2; shift so that fields[n] is MSH-n.
            fields = ["MSH", field_sep] + parts[1:]
        else:
            fields = parts
        # Trailing empty fields are common and meaningless.
        while len(fields) > 1 and fields[-1] == "":
            fields.pop()
        segments.append(Segment(name, fields, enc, i))
    return Message(text="\r".join(lines) + "\r", segments=segments, encoding=enc, charset=codec)

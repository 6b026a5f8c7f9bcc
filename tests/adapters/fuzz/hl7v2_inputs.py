"""Hypothesis strategies for hostile HL7 v2 (ER7) messages and MLLP byte streams, built from real
messages of the suite (tests/adapters/hl7v2/samples.py) and the repository's samples/hl7v2.

A message is mutated at the level HL7 has: a segment (dropped, duplicated, moved, unknown), a field
(escape sequences, huge values, thousands of repetitions or components, control bytes), the MSH
(missing, odd or invalid encoding characters, a wrong MSH-18 character set), the bytes (truncated,
BOM, line endings \\n, \\r\\n or none). Every message carries a generated patient name and CCCD that
must never appear in a log. Used by test_parser_fuzz.py and `bench/fuzz_parsers.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

from tests.adapters.hl7v2.samples import ALL_GOOD

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "hl7v2"
NAMES = ["PHẠM^THỊ MỸ DUNG", "LÊ^VĂN THẮNG", "NGUYỄN^THỊ HỒNG NHUNG", "ĐẶNG^QUỐC HUY", "VŨ^THỊ THU HƯỜNG"]
CCCDS = ["079199012345", "001085067890", "048170011122", "092201033344", "036155099988"]


@cache
def seeds() -> tuple[bytes, ...]:
    """Well-formed messages: the suite's ten message types and the two repository samples."""
    files = tuple(p.read_bytes() for p in sorted(SAMPLES.glob("*.hl7")))
    return tuple(ALL_GOOD.values()) + files


FIELD_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            '""',
            "\\F\\\\S\\\\T\\\\R\\\\E\\",
            "\\X0D\\\\X0A\\",
            "\\X1C0D\\",
            "\\X0B\\",
            "\\X00\\",
            "\\XZZ\\",
            "\\X\\",
            "\\Xe1bb87\\",
            "\\.br\\\\.sp5\\\\H\\\\N\\",
            "\\",
            "\\\\\\",
            "\\Z99\\",
            "\\C2842\\\\M2442\\",
            "~" * 5000,
            "^" * 5000,
            "&" * 5000,
            "A" * 70_000,
            "Ω" * 20_000,
            "20251399",
            "202413450800",
            "99999999999999999999",
            "-1",
            "1e400",
            "NaN",
            "\x00",
            "\x1c\x0b",
            "BV\x0bDEMO\x1cX",
            "\x1b[31m",
            "Nguyễn Văn Ánh",
        ]
    ),
    st.text(max_size=30),
    st.integers(-(2**70), 2**70).map(str),
)


@dataclass
class Hl7Case:
    """One generated message (bytes), what was done to it and the patient data it carries."""

    payload: bytes
    steps: list[str]
    control_id: str  # MSH-10 as generated ("" when the mutations removed it)
    names: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # hypothesis prints this on failure
        return f"Hl7Case(steps={self.steps}, head={self.payload[:300]!r}, size={len(self.payload)})"


def _segments(raw: bytes) -> list[str]:
    return [s for s in raw.decode("utf-8").replace("\n", "\r").split("\r") if s]


def _set_field(seg: str, n: int, value: str) -> str:
    parts = seg.split("|")
    # MSH-n is parts[n-1]; other segments' field n is parts[n].
    at = n - 1 if seg.startswith("MSH") else n
    if at < 1:
        return seg
    while len(parts) <= at:
        parts.append("")
    parts[at] = value
    return "|".join(parts)


@st.composite
def hl7_message(draw, control_prefix: str = "FZ") -> Hl7Case:
    """A hostile HL7 v2 message (see the module docstring); MSH-10 is unique per draw when kept."""
    segments = _segments(draw(st.sampled_from(seeds())))
    name, cccd = draw(st.sampled_from(NAMES)), draw(st.sampled_from(CCCDS))
    control = f"{control_prefix}{draw(st.integers(0, 10**12)):013d}"
    segments[0] = _set_field(segments[0], 10, control)
    for i, seg in enumerate(segments):
        if seg.startswith("PID|"):
            segments[i] = _set_field(_set_field(seg, 5, name), 3, f"{cccd}^^^BCA^NI")
    steps: list[str] = []
    byte_steps: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "field", "field", "field", "component", "reps", "drop_segment", "dup_segment",
                    "move_segment", "unknown_segment", "msh", "fields_count", "bytes",
                ]
            )
        )  # fmt: skip
        i = draw(st.integers(0, len(segments) - 1))
        if kind == "field":
            n = draw(st.integers(1, 30))
            value = draw(FIELD_VALUES)
            if i == 0 and n <= 2:
                n = draw(st.sampled_from([3, 4, 7, 9, 11, 12, 18]))
            segments[i] = _set_field(segments[i], n, value)
            steps.append(f"{segments[i][:3]}-{n}={value[:40]!r}")
        elif kind == "component":
            n = draw(st.integers(3, 12))
            value = "^".join(draw(st.lists(FIELD_VALUES, min_size=2, max_size=6)))
            segments[i] = _set_field(segments[i], n, value)
            steps.append(f"{segments[i][:3]}-{n} components={value[:40]!r}")
        elif kind == "reps":
            n = draw(st.integers(2, 12))
            times = draw(st.sampled_from([2, 100, 3000]))
            segments[i] = _set_field(segments[i], n, "~".join(["X^Y^Z"] * times))
            steps.append(f"{segments[i][:3]}-{n} x{times} repetitions")
        elif kind == "drop_segment":
            steps.append(f"drop {segments[i][:3]}")
            del segments[i]
            if not segments:
                segments = ["PID|1"]
        elif kind == "dup_segment":
            times = draw(st.sampled_from([1, 2, 200]))
            segments[i + 1 : i + 1] = [segments[i]] * times
            steps.append(f"duplicate {segments[i][:3]} x{times}")
        elif kind == "move_segment":
            j = draw(st.integers(0, len(segments) - 1))
            segments.insert(j, segments.pop(i))
            steps.append(f"move segment {i} to {j}")
        elif kind == "unknown_segment":
            new = draw(
                st.sampled_from(["ZZZ|1|riêng", "XYZ", "zpi|x", "P1D|1", "OBX", "1AB|x", "MSH|^~\\&|X"])
            )
            segments.insert(i, new)
            steps.append(f"insert {new!r}")
        elif kind == "msh":
            how = draw(
                st.sampled_from(
                    [
                        "no_msh",
                        "sep_hash",
                        "sep_same",
                        "short_enc",
                        "alnum_sep",
                        "msh_only",
                        "charset",
                        "lower",
                    ]
                )
            )
            msh = (
                segments[0]
                if segments[0].startswith("MSH")
                else "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.5"
            )
            if how == "no_msh":
                segments = segments[1:] or ["PID|1"]
            elif how == "sep_hash":
                # The same message with other separators (legal: MSH-1/MSH-2 declare them).
                table = str.maketrans({"|": "#", "^": "!", "~": "*", "\\": "%", "&": "$"})
                segments = [s.translate(table) for s in segments]
            elif how == "sep_same":
                segments[0] = "MSH|^^\\&" + msh[8:]
            elif how == "short_enc":
                segments[0] = "MSH|^~" + msh[8:]
            elif how == "alnum_sep":
                segments[0] = "MSHA^~\\&" + msh[8:].replace("|", "A")
            elif how == "msh_only":
                segments = [msh]
            elif how == "charset":
                cs = draw(
                    st.sampled_from(
                        ["8859/1", "UNICODE UTF-16", "GB 18030-2000", "KLINGON", "\\X1C0D\\", "ASCII"]
                    )
                )
                segments[0] = _set_field(msh, 18, cs)
            else:
                segments[0] = "msh" + msh[3:]
            steps.append(f"MSH {how}")
        elif kind == "fields_count":
            times = draw(st.sampled_from([100, 5000, 60_000]))
            segments[i] = segments[i] + "|" * times + "x"
            steps.append(f"{segments[i][:3]} + {times} empty fields")
        else:
            byte_steps.append(
                draw(
                    st.sampled_from(
                        ["truncate", "bom", "lf", "crlf", "no_eol", "nul", "cp1258", "latin1", "mllp_inside"]
                    )
                )
            )
    body = "\r".join(segments) + "\r"
    raw = body.encode("utf-8", "surrogatepass")
    for how in byte_steps:
        steps.append(f"bytes {how}")
        if how == "truncate":
            raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
        elif how == "bom":
            raw = b"\xef\xbb\xbf" + raw
        elif how == "lf":
            raw = raw.replace(b"\r", b"\n")
        elif how == "crlf":
            raw = raw.replace(b"\r", b"\r\n")
        elif how == "no_eol":
            raw = raw.replace(b"\r", b"")
        elif how == "nul":
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + b"\x00" + raw[at:]
        elif how == "cp1258":
            raw = raw.decode("utf-8", "replace").encode("cp1258", "replace")
        elif how == "latin1":
            raw = raw.decode("utf-8", "replace").encode("latin-1", "replace")
        else:
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + draw(st.sampled_from([b"\x1c\r", b"\x0b", b"\x1c"])) + raw[at:]
    return Hl7Case(raw, steps, control, [name.replace("^", " "), *name.split("^"), cccd])


@dataclass
class MllpCase:
    """Bytes to write on one MLLP connection, in chunks, and how many ACKs must come back."""

    chunks: list[bytes]
    frames: list[Hl7Case]  # messages that are framed completely (each must get exactly one ACK)
    steps: list[str]

    def __repr__(self) -> str:
        return f"MllpCase(steps={self.steps}, frames={self.frames})"


@st.composite
def mllp_stream(draw) -> MllpCase:
    """One to three hostile messages in MLLP frames, with framing errors between or around them."""
    messages = draw(st.lists(hl7_message(control_prefix="ML"), min_size=1, max_size=3))
    parts: list[bytes] = []
    steps: list[str] = []
    frames: list[Hl7Case] = []
    for m in messages:
        how = draw(st.sampled_from(["plain", "plain", "garbage_before", "double_vt", "fs_no_cr", "crlf_end"]))
        body = m.payload.replace(b"\x1c\r", b"\x1c\n")  # a message cannot carry the end marker itself
        if how == "garbage_before":
            parts.append(b"junk\r\n\x00\xff" + b"\x1c\r")
        if how == "double_vt":
            parts.append(b"\x0b")
        if how == "fs_no_cr":
            # FS without CR is not the end of a frame: the next frame's start makes it one message
            parts.append(b"\x0b" + body + b"\x1c")
            steps.append("FS without CR")
            continue
        end = b"\x1c\r\n" if how == "crlf_end" else b"\x1c\r"
        parts.append(b"\x0b" + body + end)
        frames.append(m)
        steps.append(how)
    if draw(st.booleans()):
        parts.append(b"\x0bMSH|^~\\&|UNFINISHED")  # connection closes inside a frame
        steps.append("trailing partial frame")
    stream = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)]) if stream[a:b]]
    return MllpCase(chunks, frames, steps)

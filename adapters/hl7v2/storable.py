"""Values the store must never see, refused per message (AE naming the field) before mapping.

A NUL cannot be stored in PostgreSQL text and no other C0 control belongs in HL7 v2 field data; an
identifier longer than an index entry can hold would make the database refuse the whole group commit.
"""

from __future__ import annotations

import re

from adapters.hl7v2.er7 import Message
from adapters.hl7v2.errors import DATA_TYPE_ERROR, Hl7Error, content_error

# TAB is allowed (FT/TX text); segment terminators never reach a field.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")
# Fields whose components become identifiers, indexed tokens or references (PostgreSQL caps an index
# entry at about 2.7 KB): 1,024 characters is far beyond any real MRN, visit or order number.
IDENTIFIER_FIELDS = {
    "MSH": (10,),
    "PID": (2, 3, 4, 18, 19),
    "MRG": (1, 2, 3, 5, 6),
    "PV1": (19, 50),
    "ORC": (2, 3, 4),
    "OBR": (2, 3),
    "RXA": (15,),
}
IDENTIFIER_MAX = 1024


def storable_problem(msg: Message) -> Hl7Error | None:
    """The first value of the message the store cannot take, as an AE error naming SEG-n."""
    enc = msg.encoding
    for seg in msg.segments:
        start = 3 if seg.name == "MSH" else 1  # MSH-1/MSH-2 are the separators themselves
        limited = IDENTIFIER_FIELDS.get(seg.name, ())
        parts = re.compile("[" + re.escape(enc.component + enc.repetition + enc.subcomponent) + "]")
        for n in range(start, len(seg._fields)):
            raw = seg.raw(n)
            found = _CONTROL.search(raw)
            bad = found.group() if found else _control_escape(raw, enc.escape)
            if bad is not None:
                return content_error(
                    DATA_TYPE_ERROR,
                    f"{seg.name}-{n}",
                    f"contains the control character U+{ord(bad[0]):04X}; it cannot be stored",
                )
            if n in limited and any(len(c) > IDENTIFIER_MAX for c in parts.split(raw)):
                return content_error(
                    DATA_TYPE_ERROR,
                    f"{seg.name}-{n}",
                    f"an identifier component is longer than {IDENTIFIER_MAX} characters; it cannot be stored",
                )
    return None


def _control_escape(raw: str, esc: str) -> str | None:
    """A control character written as a hex escape (\\X00\\), which unescaping would produce."""
    if esc + "X" not in raw and esc + "x" not in raw:
        return None
    for m in re.finditer(re.escape(esc) + r"[Xx]((?:[0-9A-Fa-f]{2})+)" + re.escape(esc), raw):
        for i in range(0, len(m.group(1)), 2):
            byte = int(m.group(1)[i : i + 2], 16)
            if byte < 0x20 and byte != 0x09:
                return chr(byte)
    return None

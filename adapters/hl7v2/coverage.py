"""The HL7 v2 field-coverage table, measured on the mapper itself.

For every field the HL7 V2-to-FHIR IG maps (mappings/hl7v2/ig-fields.yaml, generated from the IG's
segment maps) of every segment this adapter reads: a real message of the test corpus that carries the
segment is taken, the segment's IG fields that the message leaves empty are filled with a valid value
(mappings/hl7v2/coverage.yaml: by data type, or per field), the message is mapped, then mapped again with
that one field emptied; the FHIR elements that change are what the field becomes here. A field that changes
nothing needs a reason in coverage.yaml. `python -m adapters.hl7v2.coverage` prints docs/hl7v2-coverage.md;
tests/adapters/hl7v2/test_coverage.py keeps the two in step.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from adapters.field_coverage import changed
from adapters.hl7v2.plugin import Hl7v2Adapter
from mappings import load_yaml

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "adapters" / "hl7v2" / "corpus"
REFUSED = "required: the message is refused (AE/AR) without it"
_AD = Hl7v2Adapter()


@dataclass
class Row:
    """One field: what the IG maps it to, what it becomes here (or why it does not)."""

    segment: str
    field: str
    name: str
    ig: list[str]
    becomes: list[str]
    reason: str | None
    kind: str = ""  # the shared reason key of coverage.yaml, or "" for a field-specific reason


def _index(segment: str, n: int) -> int:
    """Position of field n in the '|'-split line (MSH-1 is the separator itself)."""
    return n - 1 if segment == "MSH" else n


def _set(line: str, segment: str, n: int, value: str) -> str:
    parts = line.split("|")
    i = _index(segment, n)
    parts += [""] * (i + 1 - len(parts))
    parts[i] = value
    return "|".join(parts).rstrip("|") if segment != "MSH" else "|".join(parts)


def _get(line: str, segment: str, n: int) -> str:
    parts = line.split("|")
    i = _index(segment, n)
    return parts[i] if i < len(parts) else ""


def _lines(spec: dict, segment: str) -> tuple[list[str], int]:
    """The context message as segment lines and the position of the segment under test."""
    text = (CORPUS / spec["file"]).read_bytes().decode("utf-8").lstrip("\ufeff")
    lines = [x for x in re.split(r"\r\n|\r|\n", text) if x]
    if "line" in spec:
        anchor = next(
            i for i, x in enumerate(lines) if x.startswith(spec.get("after", spec.get("replace", "")) + "|")
        )
        if "replace" in spec:
            lines[anchor] = spec["line"]
            return lines, anchor
        lines.insert(anchor + 1, spec["line"])
        return lines, anchor + 1
    return lines, next(i for i, x in enumerate(lines) if x.startswith(segment + "|"))


def _resources(lines: list[str]) -> dict[tuple[str, str], dict] | None:
    """Map a message; resources by (type, id) without Provenance.target (it lists the others), or None
    when the message is refused."""
    parsed = _AD.parse(("\r".join(lines) + "\r").encode("utf-8"))
    if parsed.errors or len(parsed.records) != 1:
        return None
    mapped = _AD.to_fhir(parsed.records[0])
    if mapped.errors or mapped.bundle is None:
        return None
    out = {}
    for entry in mapped.bundle["entry"]:
        res = dict(entry["resource"])
        if res["resourceType"] == "Provenance":
            res.pop("target", None)
        out[(res["resourceType"], res["id"])] = res
    return out


@lru_cache(maxsize=1)
def _config() -> tuple[dict, dict]:
    return load_yaml("hl7v2/ig-fields.yaml"), load_yaml("hl7v2/coverage.yaml")


def _contexts(segment: str) -> list[dict]:
    spec = _config()[1]["contexts"][segment]
    return spec if isinstance(spec, list) else [spec]


def filled(segment: str, context: dict) -> tuple[list[str], int]:
    """A context message of a segment with every IG field of that segment filled. Data-type samples carry
    '{n}' for the field number (and dates '{d}', a day from it), so two fields of one segment never hold
    the same value."""
    ig, cov = _config()
    lines, at = _lines(context, segment)
    overrides = context.get("fields") or {}
    for fid, value in overrides.items():  # may set fields of other segments of the message too
        seg, n = fid.split("-")[0], int(fid.split("-")[1])
        i = at if seg == segment else next(j for j, x in enumerate(lines) if x.startswith(seg + "|"))
        lines[i] = _set(lines[i], seg, n, str(value))
    for fid, spec in ig[segment].items():
        n = int(fid.split("-")[1])
        if fid in overrides:
            continue
        sample = (cov["fields"].get(fid) or {}).get("sample")
        if sample is None and _get(lines[at], segment, n):
            continue  # the corpus message already has a real value
        if sample is None:
            sample = cov["samples"][spec["type"]]
        value = str(sample).replace("{n}", str(n)).replace("{d}", f"{n % 28 + 1:02d}")
        lines[at] = _set(lines[at], segment, n, value)
    return lines, at


def rows() -> list[Row]:
    """Every IG field of every segment read by the adapter, with what it becomes (measured in each of the
    segment's context messages; the union is reported)."""
    ig, cov = _config()
    reasons = cov["reasons"]
    measured: dict[str, set[str]] = {}
    for segment, fields in ig.items():
        for context in _contexts(segment):
            lines, at = filled(segment, context)
            base = _resources(lines)
            if base is None:
                raise ValueError(
                    f"{segment} in {context['file']}: the filled message is refused; fix its samples"
                )
            for fid in fields:
                ablated = list(lines)
                ablated[at] = _set(ablated[at], segment, int(fid.split("-")[1]), "")
                after = _resources(ablated)
                measured.setdefault(fid, set()).update([REFUSED] if after is None else changed(base, after))
    out = []
    for segment, fields in ig.items():
        for fid, spec in fields.items():
            reason = (cov["fields"].get(fid) or {}).get("reason")
            becomes = sorted(measured[fid])
            kind = reason if reason in reasons else ""
            out.append(
                Row(segment, fid, spec["name"], spec["ig"], becomes, reasons.get(reason, reason), kind)
            )
    return out


def _ig_elements(targets: list[str]) -> str:
    """The IG's targets shortened to Type.element ('Patient.identifier[2]' -> 'Patient.identifier')."""
    seen: list[str] = []
    for t in targets:
        m = re.match(r"^([A-Za-z]+)\.?([A-Za-z]*)", t)
        short = f"{m.group(1)}.{m.group(2)}" if m and m.group(2) else (m.group(1) if m else t)
        if short not in seen:
            seen.append(short)
    return ", ".join(seen)


_KIND_LABELS = {
    "not_read": "not read by the adapter (kept in the archive)",
    "message_header": "MessageHeader not produced (transaction Bundle + Provenance instead)",
    "us_realm": "US or veterinary element",
    "locations": "locations beyond the assigned/prior one (kept as text)",
    "software": "software as a Device",
    "timing": "TQ1 timing details",
    "resource_times": "per-participant appointment times",
    "order_agents": "order-level operators as Provenance agents",
    "ordering_facility": "ordering facility contact details",
    "specimen_detail": "Specimen details beyond id/type/times",
    "obr_specimen": "specimen facts in OBR (SPM is read)",
    "performer": "Observation.performer",
    "": "field-specific (read only as a fallback, read elsewhere, or no element; see the row)",
}


def _kinds(unmapped: list[Row]) -> str:
    """'38 not read by the adapter, …' — unmapped fields counted by shared reason."""
    counts: dict[str, int] = {}
    for r in unmapped:
        counts[r.kind] = counts.get(r.kind, 0) + 1
    return ", ".join(
        f"{n} {_KIND_LABELS.get(k, k)}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def render(table: list[Row]) -> str:
    """docs/hl7v2-coverage.md."""
    mapped = [r for r in table if r.becomes]
    unmapped = [r for r in table if not r.becomes]
    lines = [
        "# HL7 v2 field coverage",
        "",
        "Generated by `python -m adapters.hl7v2.coverage > docs/hl7v2-coverage.md` from the mapper itself. The",
        "rows are the fields the HL7 V2-to-FHIR IG 1.0.0 maps (`mappings/hl7v2/ig-fields.yaml`, generated from",
        "the IG's segment maps by `scripts/v2_ig_fields.py`) for every segment `adapters/hl7v2` reads. For each",
        "segment a corpus message (`tests/adapters/hl7v2/corpus/`) is mapped with all those fields filled",
        "(values from `mappings/hl7v2/coverage.yaml`), then again with one field emptied; **becomes** lists",
        "the FHIR elements that changed. A field that changes nothing has its reason in `coverage.yaml`;",
        "`tests/adapters/hl7v2/test_coverage.py` fails when this file, the mapper or the reasons disagree.",
        "Segments the adapter does not read (IN2/IN3, PRT, ROL, GT1, ACC, …) are reported per message as",
        "'segment not mapped' warnings in the ACK (see `docs/hl7v2.md`). QĐ130: `docs/qd130-coverage.md`.",
        "",
        f"**Totals: {len(table)} fields — {len(mapped)} mapped, {len(unmapped)} not mapped (each with a reason).**",
        "",
        "Not mapped, by reason: " + _kinds(unmapped) + ".",
        "",
        "| segment | IG fields | mapped | not mapped |",
        "|---|---|---|---|",
    ]
    for seg in dict.fromkeys(r.segment for r in table):
        these = [r for r in table if r.segment == seg]
        n = sum(1 for r in these if r.becomes)
        lines.append(f"| {seg} | {len(these)} | {n} | {len(these) - n} |")
    lines += [
        "",
        "| field | name | IG maps it to | becomes here | not mapped because |",
        "|---|---|---|---|---|",
    ]
    for r in table:
        becomes = ", ".join(f"`{p}`" for p in r.becomes)
        why = "" if r.becomes else (r.reason or "**no reason recorded**")
        lines.append(f"| `{r.field}` | {r.name} | {_ig_elements(r.ig)} | {becomes} | {why} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(rows()))

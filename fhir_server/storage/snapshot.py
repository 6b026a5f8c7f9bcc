"""Re-send rules for source snapshots: the source's own time decides, identifiers accumulate.

A hospital's export is a snapshot of the patient at one visit, and exports arrive late, twice, or out
of order. A write that carries the source's time (`meta.extension` SOURCE_TIME_URL, set by the ingest
pipeline from QĐ130 NGAY_TTOAN/NGAY_RA or HL7 v2 MSH-7) is a snapshot write:
- older than the stored version's source time: it changes nothing, except that identifiers the stored
  version lacks are added (an old export may carry a CCCD the newer one omitted);
- otherwise it replaces the content, keeping stored identifiers it does not mention (by system);
- the source time itself is not content: a later export with the same data is a no-op.
Writes without a source time (the FHIR API) keep plain FHIR update semantics.
"""

from __future__ import annotations

from fhir_server.timeutil import parse_instant

SOURCE_TIME_URL = "http://lienthong.vn/fhir/StructureDefinition/source-time"


def source_time_extension(value: str) -> dict:
    """The meta extension recording a source snapshot's own time (a FHIR dateTime)."""
    return {"url": SOURCE_TIME_URL, "valueDateTime": value}


def source_time(body: dict) -> int | None:
    """The snapshot's source time in microseconds, or None when the write carries none."""
    meta = body.get("meta")
    if not isinstance(meta, dict):
        return None
    for ext in meta.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == SOURCE_TIME_URL:
            value = ext.get("valueDateTime")
            try:
                return parse_instant(value) if isinstance(value, str) else None
            except ValueError:
                return None
    return None


def without_source_time(meta: dict) -> dict:
    """`meta` without the source-time extension (it does not count as content)."""
    exts = meta.get("extension")
    if not isinstance(exts, list):
        return meta
    kept = [e for e in exts if not (isinstance(e, dict) and e.get("url") == SOURCE_TIME_URL)]
    if len(kept) == len(exts):
        return meta
    out = {k: v for k, v in meta.items() if k != "extension"}
    if kept:
        out["extension"] = kept
    return out


def _slot(ident: object) -> tuple[str, str]:
    if not isinstance(ident, dict):
        return ("", repr(ident))
    system = ident.get("system")
    return (system, "") if isinstance(system, str) and system else ("", str(ident.get("value")))


def with_identifiers_of(base: dict, other: dict) -> dict | None:
    """`base` plus the identifiers of `other` whose system (or, without a system, value) `base` lacks;
    None when there is nothing to add."""
    mine = base.get("identifier")
    theirs = other.get("identifier")
    if not isinstance(theirs, list) or not theirs or (mine is not None and not isinstance(mine, list)):
        return None
    have = {_slot(i) for i in mine or ()}
    extra = [i for i in theirs if _slot(i) not in have]
    if not extra:
        return None
    return {**base, "identifier": [*(mine or ()), *extra]}


def resolve(incoming: dict, stored: dict) -> dict | None:
    """What a snapshot write should store over `stored` (None: leave the stored version as it is)."""
    new_t, old_t = source_time(incoming), source_time(stored)
    if new_t is None:
        return incoming
    if old_t is not None and new_t < old_t:
        return with_identifiers_of(stored, incoming)
    return with_identifiers_of(incoming, stored) or incoming

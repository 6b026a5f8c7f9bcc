"""Read the HL7 v2 test corpus (tests/adapters/hl7v2/corpus) and map its messages."""

from __future__ import annotations

from pathlib import Path

from adapters.base import MappedRecord
from adapters.hl7v2.plugin import Hl7v2Adapter
from adapters.ids import deterministic_id

CORPUS = Path(__file__).parent / "corpus"
GOOD = sorted(p.name for p in CORPUS.glob("*.hl7") if not p.name.startswith("bad-"))
BAD = sorted(p.name for p in CORPUS.glob("bad-*.hl7"))
AD = Hl7v2Adapter()


def corpus(name: str) -> bytes:
    """Raw bytes of one corpus file."""
    return (CORPUS / name).read_bytes()


def mapped(name_or_raw: str | bytes, **options) -> MappedRecord:
    """Parse and map one message (a corpus file name or raw bytes)."""
    raw = corpus(name_or_raw) if isinstance(name_or_raw, str) else name_or_raw
    parsed = AD.parse(raw)
    assert not parsed.errors and len(parsed.records) == 1, parsed.errors
    return AD.to_fhir(parsed.records[0], options)


def bundle_of(name_or_raw: str | bytes, **options) -> dict:
    """The transaction Bundle of a message that must map without errors."""
    result = mapped(name_or_raw, **options)
    assert not result.errors, result.errors
    return result.bundle


def resources(bundle: dict, rtype: str) -> list[dict]:
    """Resources of one type in a Bundle, in entry order."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict, rtype: str) -> dict:
    """The single resource of a type in a Bundle."""
    found = resources(bundle, rtype)
    assert len(found) == 1, [r["id"] for r in found]
    return found[0]


def warnings(name_or_raw: str | bytes) -> list[str]:
    """Warning reasons of a message ("[W <code>] ...")."""
    return [w.reason for w in mapped(name_or_raw).warnings]


def ref(rtype: str, facility: str, *key: str) -> str:
    """The reference the adapter gives a resource with this natural key."""
    return f"{rtype}/{deterministic_id(rtype, facility, *key)}"

"""What a source field becomes: the FHIR elements that change when the field is removed (coverage tables).

Shared by the QĐ130 and HL7 v2 coverage generators (adapters/qd130/coverage.py, adapters/hl7v2/coverage.py):
both map a record with every field filled, map it again without one field, and call `changed`.
"""

from __future__ import annotations


def changed(before: dict, after: dict, ignore: frozenset[str] = frozenset({"meta", "id"})) -> list[str]:
    """'Type.element' names that differ between two {(type, id): resource} maps (gone or new: 'Type')."""
    out: set[str] = set()
    for key in before.keys() | after.keys():
        x, y = before.get(key), after.get(key)
        if x is None or y is None:
            out.add(key[0])
            continue
        for element in (x.keys() | y.keys()) - ignore:
            if x.get(element) != y.get(element):
                out.add(f"{key[0]}.{element}")
    # 'Type' alone is implied by any 'Type.element' of the same type
    return sorted(p for p in out if "." in p or not any(q.startswith(p + ".") for q in out))

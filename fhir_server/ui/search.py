"""Patient lookup for the clinician view: CCCD / BHYT / record number, or an accent-insensitive name.

Uses the search index (`Storage.find`), so "nguyen van an" finds "NGUYỄN VĂN AN".
"""

from __future__ import annotations

import re

from fhir_server.text import fold
from fhir_server.ui import labels as lb
from fhir_server.ui.view import BHYT, CCCD, Hospitals

MAX_RESULTS = 50


def search_params(query: str) -> list[tuple[str, str]]:
    """FHIR search parameters for what the clinician typed: any digit means an identifier."""
    q = " ".join(query.split())
    if re.search(r"\d", q):
        return [("identifier", q.replace(" ", ""))]
    return [("name", q)]


def find_patients(store, query: str) -> tuple[list[dict], bool]:
    """Matching Patient records as display rows (at most MAX_RESULTS) and whether more exist."""
    if not query.strip():
        return [], False
    matches = store.find("Patient", search_params(query))
    found = store.read_many(("Patient", pid) for pid in matches[:MAX_RESULTS])
    patients = [s.as_dict() for s in found.values() if s.content and not s.deleted]
    org_ids = sorted({ref.split("/")[-1] for p in patients for ref in _org_refs(p)})
    orgs = store.read_many(("Organization", oid) for oid in org_ids) if org_ids else {}
    by_ref = {f"Organization/{o.res_id}": o.as_dict() for o in orgs.values() if o.content and not o.deleted}
    by_ref.update({f"Patient/{p['id']}": p for p in patients})
    hospitals = Hospitals(by_ref)
    unknown = lb.vocabulary()["unknown_hospital"]
    out = [
        {
            "id": p["id"],
            "name": lb.human_name(p),
            "birth": lb.fhir_date(p.get("birthDate"), False),
            "gender": lb.gender(p.get("gender")),
            "cccd": lb.identifier(p, CCCD) or "",
            "bhyt": lb.identifier(p, BHYT) or "",
            "hospital": hospitals.of(p) or unknown,
        }
        for p in patients
    ]
    out.sort(key=lambda x: (fold(x["name"]), x["birth"], x["hospital"]))
    return out, len(matches) > MAX_RESULTS


def _org_refs(patient: dict) -> list[str]:
    refs = [(patient.get("managingOrganization") or {}).get("reference")]
    refs += [
        (i.get("assigner") or {}).get("reference")
        for i in patient.get("identifier") or []
        if isinstance(i, dict)
    ]
    return [r for r in refs if isinstance(r, str) and r.startswith("Organization/")]

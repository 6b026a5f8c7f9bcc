"""The clinician's patient page as plain data: one timeline across hospitals, built from $everything.

`patient_view(store, patient_id)` calls the $everything function (no HTTP) and returns dicts the
template renders. Every item carries the label of the hospital it came from (see `Hospitals`).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field

from fhir_server.operations.everything import everything
from fhir_server.search.page import CompartmentPage, CompartmentQuery
from fhir_server.ui import clinical, view_cache
from fhir_server.ui import labels as lb
from mappings import facilities

ICD10 = "http://hl7.org/fhir/sid/icd-10"
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
BHYT = "http://fhir.hl7.org.vn/core/sid/bhyt"
REFERRAL_CODES = {"3457005", "306206005", "103696004"}  # SNOMED: patient referral, referral to service, ...
_ORG_FIELDS = (
    "serviceProvider",
    "custodian",
    "performingOrganization",
    "managingOrganization",
    "organization",
    "provider",
    "insurer",
)
_PATIENT_FIELDS = ("subject", "patient", "beneficiary")
# The types the page shows or names (billing, provenance and report wrappers are left in the database: a
# third of a QĐ130 record is ChargeItem/Claim/Provenance/DiagnosticReport, and the page reads none of them).
VIEW_TYPES = (
    "AllergyIntolerance",
    "Appointment",
    "ClinicalImpression",
    "Composition",
    "Condition",
    "Coverage",
    "DocumentReference",
    "Encounter",
    "Medication",
    "MedicationDispense",
    "MedicationRequest",
    "Observation",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "ServiceRequest",
)


def _ref(value: object) -> str | None:
    """ "Type/id" of a Reference (relative or absolute)."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and "/" in ref:
            parts = ref.split("/")
            return f"{parts[-2]}/{parts[-1]}"
    return None


class Hospitals:
    """Decides which hospital a resource came from, robustly, with memoisation.

    Order: an explicit Organization reference of the resource, its Encounter's serviceProvider, a
    5-digit facility code in an identifier system or meta.source, the reasons it points at (e.g. an
    Appointment's Condition), and last the hospital of the Patient record it belongs to (each
    hospital keeps its own Patient record, so that is always known).
    """

    def __init__(self, by_ref: dict[str, dict]):
        self.by_ref = by_ref
        self._memo: dict[str, str] = {}
        self.by_code: dict[str, str] = {}
        # Each Organization's label once: thousands of resources point at the same three hospitals.
        self._orgs: dict[str, str] = {}
        for key, res in by_ref.items():
            if key.startswith("Organization/"):
                label = self._orgs[key] = lb.organization_label(res)
                for ident in res.get("identifier") or []:
                    value = ident.get("value") if isinstance(ident, dict) else None
                    if isinstance(value, str) and value.isdigit() and len(value) == 5 and label:
                        self.by_code[value] = label

    def org(self, ref: str | None) -> str:
        """Label of a referenced Organization (empty when not an Organization or not known)."""
        return self._orgs.get(ref, "") if ref else ""

    def of(self, res: dict, depth: int = 0) -> str:
        """Hospital label of a resource ("" when nothing says)."""
        key = f"{res.get('resourceType')}/{res.get('id')}"
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = ""  # guards reference cycles
        label = self._find(res, depth)
        self._memo[key] = label
        return label

    def _find(self, res: dict, depth: int) -> str:
        rt = res.get("resourceType")
        for f in _ORG_FIELDS:
            value = res.get(f)
            if value is not None and (label := self.org(_ref(value))):
                return label
        if rt == "ServiceRequest":  # performer of a referral is the destination, not the source
            if label := self.org(_ref(res.get("requester"))):
                return label
        else:
            for p in res.get("performer") or []:
                if label := self.org(_ref(p.get("actor") if isinstance(p, dict) and "actor" in p else p)):
                    return label
        for f in ("encounter", "context"):
            enc = self.by_ref.get(_ref(res.get(f)) or "")
            if enc is not None and depth < 3 and (label := self.of(enc, depth + 1)):
                return label
        if code := lb.facility_from_identifiers(res):
            return self.by_code.get(code) or lb.facility_label(code)
        for ident in res.get("identifier") or []:
            if isinstance(ident, dict) and (label := self.org(_ref(ident.get("assigner")))):
                return label
        if depth < 3:
            for reason in res.get("reasonReference") or []:
                target = self.by_ref.get(_ref(reason) or "")
                if target is not None and (label := self.of(target, depth + 1)):
                    return label
            owners = [res.get(f) for f in _PATIENT_FIELDS] + [
                p.get("actor") for p in res.get("participant") or [] if isinstance(p, dict)
            ]
            for owner in owners:
                ref = _ref(owner)
                if (
                    ref
                    and ref.startswith("Patient/")
                    and ref in self.by_ref
                    and ref != f"{rt}/{res.get('id')}"
                ):
                    if label := self.of(self.by_ref[ref], depth + 1):
                        return label
        return ""


@dataclass
class Visit:
    """One encounter on the timeline with everything recorded during it."""

    id: str
    hospital: str
    kind: str
    start: str
    end: str
    sort: int
    reason: str = ""
    diagnoses: list[dict] = field(default_factory=list)
    observations: list[dict] = field(default_factory=list)
    drugs: list[dict] = field(default_factory=list)
    referrals: list[dict] = field(default_factory=list)
    appointments: list[dict] = field(default_factory=list)
    # issue 17: vitals apart from labs, labs by panel, procedures, documents, collapsing of long stays
    klass: str = ""
    end_sort: int = 0
    vitals: list[dict] = field(default_factory=list)
    vital_rows: list[dict] = field(default_factory=list)
    vital_columns: list[tuple[str, str]] = field(default_factory=list)
    labs: list[dict] = field(default_factory=list)
    panels: list[dict] = field(default_factory=list)
    procedures: list[dict] = field(default_factory=list)
    documents: list[dict] = field(default_factory=list)
    long: bool = False

    def has(self, kind: str) -> bool:
        """Whether the visit holds items of a timeline type filter (visits, labs, imaging, drugs, ...)."""
        return {
            "visits": True,
            "labs": bool(self.labs),
            "imaging": any(o["category_code"] == "imaging" for o in self.observations),
            "drugs": bool(self.drugs),
            "procedures": bool(self.procedures),
            "documents": bool(self.documents),
        }.get(kind, True)


def _encounter_kind(enc: dict) -> str:
    for t in enc.get("type") or []:
        if text := lb.concept_text(t):
            return text
    code = (enc.get("class") or {}).get("code", "")
    return lb.vocabulary()["encounter_class"].get(code, code)


def _category(obs: dict) -> str:
    for cat in obs.get("category") or []:
        for coding in cat.get("coding") or []:
            if label := lb.vocabulary()["observation_category"].get(coding.get("code", "")):
                return label
        if text := lb.concept_text(cat):
            return text
    return ""


def _is_referral(sr: dict) -> bool:
    concepts = [sr.get("code") or {}] + list(sr.get("category") or [])
    return any(c.get("code") in REFERRAL_CODES for cc in concepts for c in (cc.get("coding") or []))


def _record(p: dict, hospitals: Hospitals) -> dict:
    mrn = next(
        (
            i.get("value")
            for i in p.get("identifier") or []
            if isinstance(i, dict)
            and (
                any(c.get("code") == "MR" for c in (i.get("type") or {}).get("coding") or [])
                or "/mrn/" in str(i.get("system", ""))
            )
        ),
        "",
    )
    return {
        "id": p.get("id"),
        "hospital": hospitals.of(p) or lb.vocabulary()["unknown_hospital"],
        "mrn": mrn or "",
        "name": lb.human_name(p),
        "birth": lb.fhir_date(p.get("birthDate"), False),
        "gender": lb.gender(p.get("gender")),
        "cccd": lb.identifier(p, CCCD) or "",
        "bhyt": lb.identifier(p, BHYT) or "",
    }


DEFAULT_CACHE = 32  # patients per process; the server passes LIENTHONG_UI_VIEW_CACHE
# Parsed resources kept per process (about 5 records of 2,000): a changed record re-parses only its new rows.
PARSED_RESOURCES = 10_000


def patient_view(
    store,
    patient_id: str,
    icd10_path: str | None = None,
    filters: dict[str, str] | None = None,
    now_us: int | None = None,
    page_visits: int = 20,
    cache_size: int = DEFAULT_CACHE,
) -> dict:
    """Everything the patient page shows, from $everything over the patient's link set.

    `filters` narrows the timeline (hospital, type, since, until as YYYY-MM-DD); the summary header always
    covers everything. `now_us` (microseconds) decides upcoming appointments and card validity. The timeline
    shows the `page_visits` newest visits that pass the filters, all of them with `filters["all"]`.
    The model of the whole record is cached (`view_cache`) under a fingerprint read from the database on
    every call, so a write by any process is seen at once.
    """
    now_us = now_us if now_us is not None else int(time.time() * 1_000_000)
    filters = filters or {}
    cache = view_cache.cache_for(store, cache_size)
    parsed = view_cache.parsed_for(store, min(PARSED_RESOURCES, cache_size * 2_000))
    base = None
    if cache is not None:
        revision = facilities.revision()
        keys = everything(
            store, patient_id, CompartmentQuery(types=VIEW_TYPES, summary=True, members_of_types=True)
        )
        base = cache.get((patient_id, icd10_path, revision, view_cache.fingerprint(keys)))
    if base is None:
        result = everything(store, patient_id, CompartmentQuery(types=VIEW_TYPES, members_of_types=True))
        resources = parsed.parse(result) if parsed is not None else [row.as_dict() for row in result.rows]
        base = _record_view(result, resources, patient_id, icd10_path)
        if cache is not None:
            # Keyed by the rows actually read: a write between the two queries only costs one more build.
            cache.put((patient_id, icd10_path, revision, view_cache.fingerprint(result)), base)
    return _request_view(base, filters, now_us, page_visits)


def _request_view(base: dict, filters: dict[str, str], now_us: int, page_visits: int) -> dict:
    """The parts of the page that depend on the request: today's date and the timeline filters."""
    matching = _filter_timeline(base["timeline"], filters)
    # The newest visits first; older ones on request, so a long record stays a light page on a ward tablet.
    shown = matching if filters.get("all") else matching[:page_visits]
    upcoming = sorted(
        (
            a
            for a in base["appointments"]
            if a["sort"] >= now_us and a["status"] not in ("cancelled", "noshow", "fulfilled")
        ),
        key=lambda x: x["sort"],
    )
    coverage = clinical.coverage_status(base["coverages"], now_us)
    return {
        **base,
        "upcoming": upcoming,
        "coverage": coverage,
        "shown": shown,
        "more_visits": len(matching) - len(shown),
        "filters": filters,
        # Everything of the page that is not the cached record: equal keys render the same HTML.
        "render_key": (
            tuple(sorted(filters.items())),
            tuple(v.id for v in shown),
            len(matching) - len(shown),
            tuple(id(a) for a in upcoming),
            tuple(sorted(coverage.items())) if coverage else None,
        ),
    }


def _record_view(
    result: CompartmentPage, resources: list[dict], patient_id: str, icd10_path: str | None
) -> dict:
    """The model of the whole record (no filter, no date) from its parsed rows: built once per record version."""
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    hospitals = Hospitals(by_ref)
    unknown = lb.vocabulary()["unknown_hospital"]
    by_type: dict[str, list[dict]] = defaultdict(list)
    for r in resources:
        by_type[r["resourceType"]].append(r)

    records = [_record(p, hospitals) for p in by_type["Patient"] if p["id"] in result.patient_ids]
    records.sort(key=lambda x: (x["id"] != patient_id, x["hospital"]))
    visits: dict[str, Visit] = {}
    for enc in by_type["Encounter"]:
        period = enc.get("period") or {}
        reason = "; ".join(t for t in (lb.concept_text(c) for c in enc.get("reasonCode") or []) if t)
        visits[enc["id"]] = Visit(
            enc["id"],
            hospitals.of(enc) or unknown,
            _encounter_kind(enc),
            lb.fhir_date(period.get("start")),
            lb.fhir_date(period.get("end")),
            lb.sort_key(period.get("start")),
            reason,
            klass=(enc.get("class") or {}).get("code", ""),
            end_sort=lb.sort_key(period.get("end")),
        )
    loose = Visit("", "", "Không gắn với lượt khám", "", "", 0)

    def visit_of(res: dict) -> Visit:
        ref = _ref(res.get("encounter") or res.get("context")) or ""
        return visits.get(ref.split("/", 1)[-1], loose) if ref.startswith("Encounter/") else loose

    roles = {}
    role_labels = lb.vocabulary()["diagnosis_role"]
    stays = set(lb.vocabulary()["inpatient_classes"])
    for enc in by_type["Encounter"]:
        outpatient = (enc.get("class") or {}).get("code", "") not in stays
        for d in enc.get("diagnosis") or []:
            use = lb.concept_text(d.get("use"))
            # "AD" (admission diagnosis) of an outpatient visit is the initial diagnosis, not an admission
            key = "AD_outpatient" if use == "AD" and outpatient else use
            roles[_ref(d.get("condition"))] = role_labels.get(key, "")
    diagnoses = []
    for c in by_type["Condition"]:
        code = lb.coding_code(c.get("code"), ICD10) or ""
        when = c.get("recordedDate") or c.get("onsetDateTime") or ""
        name = clinical.icd10_name(code, lb.concept_text(c.get("code")), icd10_path)
        item = {
            "code": code,
            "name": name,
            "date": lb.fhir_date(when, False),
            "sort": lb.sort_key(when),
            "hospital": hospitals.of(c) or unknown,
            "role": roles.get(f"Condition/{c['id']}", ""),
        }
        diagnoses.append(item)
        visit_of(c).diagnoses.append(item)
    all_vitals: list[dict] = []
    all_labs: list[dict] = []
    for o in by_type["Observation"]:
        value, unit = lb.observation_value(o)
        when = o.get("effectiveDateTime") or (o.get("effectivePeriod") or {}).get("start") or o.get("issued")
        hospital = hospitals.of(o) or unknown
        visit = visit_of(o)
        signs = clinical.vital_of(o)
        if signs or clinical.is_vital_category(o):
            vit = {
                "vitals": signs,
                "date": lb.fhir_date(when),
                "sort": lb.sort_key(when),
                "hospital": hospital,
            }
            visit.vitals.append(vit)
            all_vitals.append(vit)
            continue
        cat_code = next(
            (c.get("code", "") for cc in o.get("category") or [] for c in cc.get("coding") or []), ""
        )
        item = {
            "category": _category(o),
            "category_code": cat_code,
            "name": lb.concept_text(o.get("code")),
            "value": value,
            "unit": unit,
            "range": lb.reference_range(o),
            "date": lb.fhir_date(when),
            "sort": lb.sort_key(when),
            "flag": clinical.lab_flag(o),
            "limits": clinical.range_limits(o),
            "hospital": hospital,
        }
        if cat_code == "laboratory" or (not cat_code and "valueQuantity" in o):
            key, name, panel = clinical.lab_identity(o)
            number = (o.get("valueQuantity") or {}).get("value")
            item.update(
                key=key,
                slug=clinical.slug(key),
                name=name,
                panel=panel,
                number=number if isinstance(number, int | float) else None,
            )
            visit.labs.append(item)
            all_labs.append(item)
        visit.observations.append(item)
    for pr in by_type["Procedure"]:
        when = pr.get("performedDateTime") or (pr.get("performedPeriod") or {}).get("start")
        visit_of(pr).procedures.append(
            {"name": lb.concept_text(pr.get("code")), "date": lb.fhir_date(when), "sort": lb.sort_key(when)}
        )
    docs = clinical.documents(by_type, by_ref, hospitals, unknown)
    for d in docs:
        visits.get(d["encounter"], loose).documents.append(d)
    prescribed = set()
    for m in by_type["MedicationRequest"]:
        prescribed.add(f"MedicationRequest/{m['id']}")
        visit_of(m).drugs.append(
            _drug(
                m, m.get("authoredOn"), hospitals, unknown, (m.get("dispenseRequest") or {}).get("quantity")
            )
        )
    for m in by_type["MedicationDispense"]:
        if any(_ref(a) in prescribed for a in m.get("authorizingPrescription") or []):
            continue  # already listed as the prescription it fills
        visit_of(m).drugs.append(_drug(m, m.get("whenHandedOver"), hospitals, unknown, m.get("quantity")))
    referrals = []
    for sr in by_type["ServiceRequest"]:
        if not _is_referral(sr):
            continue
        dest = next((label for p in sr.get("performer") or [] if (label := hospitals.org(_ref(p)))), "")
        item = {
            "from": hospitals.of(sr) or unknown,
            "to": dest or unknown,
            "date": lb.fhir_date(sr.get("authoredOn")),
            "sort": lb.sort_key(sr.get("authoredOn")),
            "reason": "; ".join(
                lb.coding_code(rc, ICD10) or lb.concept_text(rc) for rc in sr.get("reasonCode") or []
            ),
            "number": next((i.get("value") for i in sr.get("identifier") or []), ""),
            "status": sr.get("status", ""),
            "notes": [n.get("text") for n in sr.get("note") or [] if n.get("text")],
        }
        referrals.append(item)
        visit_of(sr).referrals.append(item)
    appointments = []
    for a in by_type["Appointment"]:
        when = a.get("start") or ((a.get("requestedPeriod") or [{}])[0]).get("start")
        item = {
            "date": lb.fhir_date(when),
            "sort": lb.sort_key(when),
            "status": a.get("status", ""),
            "description": a.get("description") or lb.concept_text((a.get("serviceType") or [None])[0]),
            "hospital": hospitals.of(a) or unknown,
        }
        appointments.append(item)
    timeline = sorted(visits.values(), key=lambda v: v.sort, reverse=True)
    if (
        loose.diagnoses
        or loose.observations
        or loose.drugs
        or loose.referrals
        or loose.documents
        or loose.vitals
    ):
        timeline.append(loose)
    for v in timeline:
        v.observations.sort(key=lambda x: (x["sort"], x["category"], x["name"]))
        v.diagnoses.sort(key=lambda x: (x["role"] != "Chính", x["code"]))
        v.procedures.sort(key=lambda x: x["sort"])
        # A stay of more than 3 days is folded, so one long admission does not bury the other visits.
        v.long = v.end_sort - v.sort > 3 * 86_400_000_000
    distinct: dict[str, dict] = {}
    for d in sorted(diagnoses, key=lambda x: x["sort"], reverse=True):
        if not d["code"]:
            continue  # free-text diagnoses stay on their visit card
        entry = distinct.setdefault(d["code"], {**d, "hospitals": [], "count": 0})
        entry["name"] = entry["name"] or d["name"]
        entry["count"] += 1
        if d["hospital"] not in entry["hospitals"]:
            entry["hospitals"].append(d["hospital"])
    hospital_names = sorted({r["hospital"] for r in records}) + sorted(
        {v.hospital for v in timeline if v.hospital} - {r["hospital"] for r in records}
    )
    hospital_class = {h: f"h{i % 4 + 1}" for i, h in enumerate(hospital_names)}
    for v in timeline:
        v.vital_rows, v.vital_columns = clinical.vital_rows(v.vitals)
        v.panels = clinical.lab_panels(v.labs)
    return {
        "patient_id": patient_id,
        "records": records,
        "cccd": next((r["cccd"] for r in records if r["cccd"]), ""),
        "bhyt": next((r["bhyt"] for r in records if r["bhyt"]), ""),
        # A colour per hospital (4 colours cycle) so a glance shows which hospital found what.
        "hospital_class": hospital_class,
        "main": records[0] if records else None,
        "hospitals": hospital_names,
        "timeline": timeline,
        "diagnoses": list(distinct.values()),
        "referrals": sorted(referrals, key=lambda x: x["sort"], reverse=True),
        "appointments": sorted(appointments, key=lambda x: x["sort"], reverse=True),
        "total": result.total,
        # issue 17: the summary header, vitals and lab trends, documents, timeline filters
        "allergies": clinical.allergies(by_type["AllergyIntolerance"], hospitals, unknown),
        "allergy_recorded": bool(by_type["AllergyIntolerance"]),
        "problems": clinical.active_problems(by_type["Condition"], hospitals, unknown, icd10_path),
        "medications": clinical.current_medications(by_type["MedicationRequest"], hospitals, unknown, _drug),
        "last_vitals": clinical.latest_vitals(all_vitals),
        "vital_charts": clinical.vital_charts(all_vitals, hospital_class),
        "lab_trends": clinical.lab_trends(all_labs, hospital_class),
        "open_referrals": [r for r in referrals if r["status"] in ("active", "draft", "on-hold")],
        "coverages": by_type["Coverage"],
        "documents": docs,
        "types": lb.vocabulary()["timeline_types"],
        "rendered": {},  # HTML of this record by (template, render_key, context): see routes.render_view
    }


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def timeline_filters(hospital: str, type: str, since: str, until: str, all: str = "") -> dict[str, str]:
    """The timeline filters of the query string, with malformed values dropped (the page never fails on them)."""
    out = {"hospital": hospital.strip()[:200], "all": "1" if all else ""}
    if type in lb.vocabulary()["timeline_types"]:
        out["type"] = type
    for name, value in (("since", since), ("until", until)):
        if _DAY.match(value.strip()):
            out[name] = value.strip()
    return {k: v for k, v in out.items() if v}


def _filter_timeline(timeline: list[Visit], filters: dict[str, str]) -> list[Visit]:
    """The visits the timeline filters keep: hospital, content type, and a period (YYYY-MM-DD, inclusive)."""
    since = lb.sort_key(filters.get("since")) if filters.get("since") else None
    until_rng = clinical.period_end(filters.get("until")) if filters.get("until") else None
    out = []
    for v in timeline:
        if filters.get("hospital") and v.hospital != filters["hospital"]:
            continue
        if filters.get("type") and not v.has(filters["type"]):
            continue
        if since is not None and (v.end_sort or v.sort) < since:
            continue
        if until_rng is not None and v.sort >= until_rng:
            continue
        out.append(v)
    return out


def _drug(m: dict, when: str | None, hospitals: Hospitals, unknown: str, qty: dict | None) -> dict:
    value, unit = lb.quantity(qty)
    dosage = "; ".join(d.get("text", "") for d in m.get("dosageInstruction") or [] if d.get("text"))
    # medication[x]: a code here, or a reference to a Medication ($everything includes it)
    med = hospitals.by_ref.get(_ref(m.get("medicationReference")) or "", {})
    name = lb.concept_text(m.get("medicationCodeableConcept") or med.get("code")) or (
        m.get("medicationReference") or {}
    ).get("display", "")
    return {
        "name": name,
        "dosage": dosage,
        "quantity": f"{value} {unit}".strip(),
        "date": lb.fhir_date(when),
        "kind": "Kê đơn" if m.get("resourceType") == "MedicationRequest" else "Cấp phát",
        "hospital": hospitals.of(m) or unknown,
    }

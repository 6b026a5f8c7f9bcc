"""Re-exam appointments ("hẹn tái khám", QĐ130 XML14 / NGAY_TAI_KHAM): one row per Appointment (pure).

A re-exam is *kept* when the same patient has a visit whose start day falls in the window around the
appointment day (LIENTHONG_REEXAM_DAYS_BEFORE / _AFTER, default −3/+7) — at the facility that gave the
appointment (LIENTHONG_REEXAM_SCOPE=facility, the default: a BHYT giấy hẹn is valid there) or at any facility
(`any`) — and after the visit that gave it; *missed* when the window has closed with no such visit;
*pending* otherwise. The match itself is SQL over the visit facts (storage), redone for a patient whenever
one of their visits or appointments is written, so a visit that arrives before or after its appointment,
late, corrected or deleted moves the appointment between kept / missed / pending in the same commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fhir_server.reports.facts import _birth, _date, _has_bhyt, _province, _ref_id, age_band, periods

FOLLOWUP = "FOLLOWUP"  # v2-0276 appointment reason: a follow-up visit
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
# what QĐ130 mappings stored before they set appointmentType (Appointment.description)
REEXAM_TEXTS = {"hẹn khám lại", "hẹn tái khám"}
NOT_COUNTED = {"cancelled", "entered-in-error"}


@dataclass(frozen=True, slots=True)
class ReexamRule:
    """The window around the appointment day and where the visit must happen."""

    days_before: int = 3
    days_after: int = 7
    scope: str = "facility"  # facility | any

    @property
    def any_facility(self) -> bool:
        """True when a visit at any facility keeps the appointment."""
        return self.scope == "any"


def reexam_rule(settings) -> ReexamRule:
    """The rule the settings (LIENTHONG_REEXAM_*) describe."""
    return ReexamRule(settings.reexam_days_before, settings.reexam_days_after, settings.reexam_scope)


def is_reexam(appt: dict) -> bool:
    """True for a re-exam appointment that still counts (FOLLOWUP type, or a QĐ130 re-exam text)."""
    if appt.get("status") in NOT_COUNTED:
        return False
    for coding in (appt.get("appointmentType") or {}).get("coding") or []:
        if isinstance(coding, dict) and coding.get("code") == FOLLOWUP:
            return True
    return str(appt.get("description") or "").strip().lower() in REEXAM_TEXTS


def appointment_day(appt: dict) -> dt.date | None:
    """The day the patient is expected: `start`, else the first requested period's start."""
    day = _date(appt.get("start"))
    if day is None:
        for period in appt.get("requestedPeriod") or []:
            day = day or _date((period or {}).get("start"))
    return day


def patient_of(appt: dict) -> str | None:
    """The id of the Patient participant."""
    for part in appt.get("participant") or []:
        pid = _ref_id((part or {}).get("actor"), "Patient")
        if pid:
            return pid
    return None


def origin_encounter(appt: dict) -> str | None:
    """The visit that gave the appointment (QĐ130: `supportingInformation` names its Encounter)."""
    for ref in appt.get("supportingInformation") or []:
        eid = _ref_id(ref, "Encounter")
        if eid:
            return eid
    return None


def reexam_row(appt: dict, patient: dict | None, rule: ReexamRule) -> dict | None:
    """The reexam row of one Appointment (None when it is not a counted re-exam)."""
    day = appointment_day(appt)
    pid = patient_of(appt)
    if day is None or pid is None or not is_reexam(appt):
        return None
    old, new = _province(patient, day)
    return {
        "appointment_id": str(appt.get("id")),
        "patient_id": pid,
        "origin_encounter": origin_encounter(appt),
        "province_old": old,
        "province_new": new,
        **periods(day),
        "window_start": (day - dt.timedelta(days=rule.days_before)).isoformat(),
        "window_end": (day + dt.timedelta(days=rule.days_after)).isoformat(),
        "age_band": age_band(_birth((patient or {}).get("birthDate")), day),
        "sex": (patient or {}).get("gender"),
        "bhyt": _has_bhyt(patient),
    }

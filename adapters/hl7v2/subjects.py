"""Who and which visit each segment is about: every PID -> Patient, every PV1 after it -> its visit.

HL7 v2 groups are positional: a DG1 or OBX belongs to the nearest PID above it and to the nearest PV1
after that PID (ADT^A17 carries two patients, BAR^P01 several visits of one patient, ORU several
patients). Mapping every PID/PV1 first and then asking `Subjects.of(segment)` keeps the family mappers
free of that walk.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.encounter import encounter_ref, map_encounter
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import ACCEPTED, REQUIRED_FIELD_MISSING, SEGMENT_SEQUENCE, content_error
from adapters.hl7v2.patient import map_patient, patient_key


@dataclass(frozen=True)
class Subject:
    """The patient (and visit) a segment belongs to; refs are "Type/id"."""

    patient_ref: str | None = None
    patient_key: str | None = None
    encounter_ref: str | None = None
    encounter_written: bool = False  # this message PUTs the Encounter (so DG1 may add Encounter.diagnosis)


class Subjects:
    """Subject per segment index, from one pass over the message."""

    def __init__(self, per_index: list[Subject]):
        self._per_index = per_index

    def of(self, seg: Segment) -> Subject:
        """The subject of the PID/PV1 group this segment sits in (the first patient before any PID)."""
        return self._per_index[seg.index]

    def patient_of(self, seg: Segment, where: str) -> Subject:
        """Like `of`, but a message without any patient is a content error (AE 101)."""
        subject = self.of(seg)
        if subject.patient_ref is None:
            raise content_error(REQUIRED_FIELD_MISSING, "PID", f"PID segment missing (needed for {where})")
        return subject

    @property
    def first(self) -> Subject:
        """The first patient of the message (empty Subject when there is no PID)."""
        for s in self._per_index:
            if s.patient_ref:
                return s
        return Subject()


def map_subjects(b: BundleBuilder, msg: Message, row: dict, org_ref: str | None) -> Subjects:
    """Map every PID to a Patient and every PV1 to its Encounter as the message's `encounter` mode says."""
    mode = row.get("encounter", "reference")
    inactive = row.get("patient") == "inactive"
    per_index: list[Subject] = []
    current = Subject()
    for seg in msg.segments:
        if seg.name == "PID":
            ref = map_patient(b, msg, org_ref, seg)
            body = b.get(ref)
            if inactive:
                body["active"] = False
            current = Subject(ref, patient_key(body["identifier"], b.ctx, "PID-3"))
            b.use(seg, ref)
        elif seg.name == "PV1" and current.patient_ref:
            current = _visit(b, msg, seg, current, mode, org_ref)
        per_index.append(current)
    if mode == "put":
        _check_visits(b, msg, row)
    # Segments before the first PID (SIU's SCH, REF's RF1) belong to the first patient.
    first = next((s for s in per_index if s.patient_ref), None)
    if first is not None:
        per_index = [s if s.patient_ref else first for s in per_index]
    return Subjects(per_index)


def _visit(b: BundleBuilder, msg: Message, pv1: Segment, subject: Subject, mode: str, org_ref) -> Subject:
    """The Encounter of one PV1 under the message's mode (put / optional / reference / none)."""
    if mode == "none":
        return subject
    has_visit = bool(pv1.get(19))
    if mode == "put" or (mode == "optional" and has_visit):
        ref = map_encounter(b, msg, pv1, subject.patient_ref, subject.patient_key, org_ref)
        return Subject(subject.patient_ref, subject.patient_key, ref, True)
    if mode == "optional":
        # Person-level events (A28/A31/A60) often carry an empty PV1: nothing to store, say so.
        b.use(pv1)
        if any(pv1.raw(n) for n in range(3, 53)):
            b.warn(
                ACCEPTED,
                "PV1",
                "PV1 without visit number (PV1-19) on a person-level event: no Encounter written",
            )
        return Subject(subject.patient_ref, subject.patient_key)
    ref = encounter_ref(b, pv1)
    b.use(pv1)
    if ref is None:
        b.warn(
            REQUIRED_FIELD_MISSING,
            "PV1-19",
            "visit number (PV1-19) missing: the message's resources are not linked to a visit",
        )
    return Subject(subject.patient_ref, subject.patient_key, ref, False)


def _check_visits(b: BundleBuilder, msg: Message, row: dict) -> None:
    """A visit event needs a PV1 after each PID (AE 100), except where messages.yaml says `pv1: optional`."""
    pids = [seg for seg in msg.segments if seg.name == "PID"]
    for i, pid in enumerate(pids):
        end = pids[i + 1].index if i + 1 < len(pids) else len(msg.segments)
        if any(seg.name == "PV1" for seg in msg.segments[pid.index : end]):
            continue
        event = f"{msg.message_code}^{msg.trigger}"
        if row.get("pv1") == "optional":
            b.warn(
                SEGMENT_SEQUENCE,
                "PV1",
                f"PV1 segment missing in {event}: patient stored, no Encounter written",
            )
        else:
            raise content_error(SEGMENT_SEQUENCE, "PV1", f"PV1 segment missing (required in {event})")

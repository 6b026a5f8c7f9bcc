"""The BALP classification of FHIR requests (pure function; no database)."""

from __future__ import annotations

import pytest

from fhir_server.audit.events import classify, outcome_code


@pytest.mark.parametrize(
    ("method", "path", "subtype", "action"),
    [
        ("GET", "/fhir/Patient/bn-1", "read", "R"),
        ("GET", "/fhir/Patient/bn-1/_history/2", "vread", "R"),
        ("GET", "/fhir/Patient/bn-1/_history", "history-instance", "R"),
        ("GET", "/fhir/Patient/_history", "history-type", "R"),
        ("GET", "/fhir/_history", "history-system", "R"),
        ("GET", "/fhir/Observation", "search-type", "E"),
        ("POST", "/fhir/Observation/_search", "search-type", "E"),
        ("GET", "/fhir", "search-system", "E"),
        ("POST", "/fhir", "transaction", "E"),
        ("POST", "/fhir/Patient", "create", "C"),
        ("PUT", "/fhir/Patient/bn-1", "update", "U"),
        ("PUT", "/fhir/Patient", "update", "U"),
        ("PATCH", "/fhir/Patient/bn-1", "patch", "U"),
        ("DELETE", "/fhir/Patient/bn-1", "delete", "D"),
        ("GET", "/fhir/Patient/bn-1/$everything", "operation", "E"),
        ("POST", "/fhir/Patient/$match", "operation", "E"),
    ],
)
def test_interaction_codes(method, path, subtype, action):
    access = classify(method, path, "/fhir")
    assert access is not None
    assert (access.subtype, access.action) == (subtype, action)


def test_export_is_a_dicom_export_event():
    access = classify("GET", "/fhir/$export", "/fhir")
    assert access is not None and access.export


@pytest.mark.parametrize("path", ["/fhir/metadata", "/healthz", "/metrics", "/docs"])
def test_no_patient_data_no_event(path):
    assert classify("GET", path, "/fhir") is None


def test_outcome_codes():
    assert [outcome_code(s) for s in (200, 201, 304, 401, 403, 404, 500, 503)] == [
        "0",
        "0",
        "0",
        "4",
        "4",
        "4",
        "8",
        "8",
    ]

"""The Patient compartment (official R4 CompartmentDefinition) and the care-date parameters per type.

Both are data files in `fhir_server/search/data/`: the compartment is vendored from the FHIR R4
package (see docs/clinician-view.md for its source), the care dates are Lienthong's choice of official
date SearchParameters used by `$everything` start/end.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import orjson

DATA = "fhir_server.search.data"


def _load(name: str) -> dict:
    return orjson.loads(resources.files(DATA).joinpath(name).read_bytes())


@cache
def patient_compartment() -> dict[str, tuple[str, ...]]:
    """Resource type -> reference search parameters that put a resource in a Patient's compartment."""
    return {t: tuple(params) for t, params in _load("patient-compartment-r4.json")["resource"].items()}


@cache
def compartment_pairs() -> tuple[tuple[str, str], ...]:
    """Every (resource type, parameter) pair of the Patient compartment, sorted."""
    return tuple(sorted((t, p) for t, params in patient_compartment().items() for p in params))


@cache
def care_date_params() -> dict[str, tuple[str, ...]]:
    """Resource type -> date search parameters that say when the care happened (for start/end)."""
    return {t: tuple(params) for t, params in _load("care-dates.json")["params"].items()}


@cache
def care_date_pairs() -> tuple[tuple[str, str], ...]:
    """Every (resource type, date parameter) pair used by the start/end filter, sorted."""
    return tuple(sorted((t, p) for t, params in care_date_params().items() for p in params))


# Resources a record needs to be read (who, where, what drug) though they are not about the patient.
# Encounters are not here: they are in the compartment themselves (Encounter.patient) and so obey
# start/end by their own period rather than sneaking back in through a referencing resource.
SUPPORT_TYPES: tuple[str, ...] = (
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "Medication",
    "Device",
    "HealthcareService",
)

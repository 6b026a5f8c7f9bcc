"""FHIR operations beyond the REST interactions, one module each, mounted through `OPERATIONS`.

Adding an operation: write `operations/<name>.py` with its parameters, its query (through storage)
and its Bundle, declare `OPERATION = Operation(...)`, and list it here; the app mounts its router
before the generic REST routes and the CapabilityStatement advertises it.
"""

from __future__ import annotations

from fhir_server.operations import evaluate_measure, everything, export, lastn, match, outbox, validate
from fhir_server.operations.registry import Operation

OPERATIONS: tuple[Operation, ...] = (
    everything.OPERATION,
    match.OPERATION,
    outbox.OPERATION,
    export.OPERATION,
    export.PATIENT_OPERATION,
    export.GROUP_OPERATION,
    lastn.OPERATION,
    validate.OPERATION,
    evaluate_measure.OPERATION,
)

__all__ = ["OPERATIONS", "Operation"]

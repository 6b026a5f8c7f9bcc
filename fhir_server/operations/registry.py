"""What an operation declares: its name and definition (for the CapabilityStatement) and its routes."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter


@dataclass(frozen=True)
class Operation:
    """One FHIR operation mounted under the base: `$name` on a resource type, or system-wide."""

    name: str
    definition: str
    router: APIRouter
    resource_type: str | None = None  # None with level "system": [base]/$name
    level: str = "type"  # type (and instance) | system

    def capability(self) -> dict:
        """The entry the CapabilityStatement lists for this operation."""
        out = {"name": self.name, "definition": self.definition, "level": self.level}
        if self.resource_type:
            out["type"] = self.resource_type
        return out

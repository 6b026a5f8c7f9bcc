"""FHIR operations beyond the REST interactions (Patient/$everything, ...)."""

"""FHIR search: index extraction at write time and query execution over the index tables."""

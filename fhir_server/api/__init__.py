"""The FHIR REST API over HTTP (FastAPI): routes, request bodies, responses, dependencies."""

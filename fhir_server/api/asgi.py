"""ASGI entry point for uvicorn workers: the app configured from the environment."""

from fhir_server.api.app import create_app

app = create_app()

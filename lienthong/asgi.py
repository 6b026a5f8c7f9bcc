"""ASGI entry point for external servers (`uvicorn lienthong.asgi:app`): the app configured from the
environment."""

from lienthong.app import create_app

app = create_app()

"""Deterministic FHIR ids for adapter output (the server's own scheme, so link sets and sources agree)."""

from __future__ import annotations

from fhir_server.ids import deterministic_id

__all__ = ["deterministic_id"]

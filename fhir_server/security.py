"""Compatibility re-exports: access control lives in `fhir_server.auth` (tokens, scopes, policy, gate)."""

from __future__ import annotations

from fhir_server.auth.tokens import AuthConfig, Principal, verify_token

__all__ = ["AuthConfig", "Principal", "verify_token"]

"""Access control: SMART tokens and scopes, the request gate, registered clients and the token endpoint.

The verified caller of a request is `request.state.principal` (a `Principal`).
"""

from __future__ import annotations

from fhir_server.auth.tokens import AuthConfig, Principal

__all__ = ["AuthConfig", "Principal"]

"""Province binding of health-department callers (a `province` claim): aggregates and exports of their
province only.

The claim is a post-2025 (QĐ 19/2025) province code: health departments exist under the new boundaries,
and the visit facts carry every visit's new-era province (old codes are mapped through the crosswalk).
Asking for another province is refused (403); asking for none is limited to the caller's province,
so a department tool that does not know the parameter still gets a correct, smaller answer.
"""

from __future__ import annotations

from fhir_server.auth.policy import forbidden
from fhir_server.auth.tokens import Principal
from fhir_server.errors import FhirError
from fhir_server.i18n import msg


def normalize(code: str | None) -> str | None:
    """A province code as the facts store it: two digits ('1' -> '01'); None when empty."""
    code = (code or "").strip()
    if not code:
        return None
    if not code.isdigit() or len(code) > 3:
        raise FhirError.bad_request(msg("province must be a province code, not {value}", value=code))
    return code.zfill(2)


def effective_province(principal: Principal | None, asked: str | None) -> str | None:
    """The province a report is limited to: the caller's own when bound (403 for another), else `asked`."""
    wanted = normalize(asked)
    own = normalize(principal.province) if principal is not None and principal.province else None
    if own is None:
        return wanted
    if wanted is not None and wanted != own:
        raise forbidden(
            msg("A client of province {own} may read only that province, not {asked}", own=own, asked=wanted)
        )
    return own


def province_filter(province: str | None) -> dict[str, str]:
    """The visit-facts filter for a province (new-era code); empty for the whole country."""
    return {"province_new": province} if province else {}

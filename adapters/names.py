"""Vietnamese personal names: family name first, then middle and given names."""

from __future__ import annotations

from fhir_server.text import nfc


def human_name(full_name: str) -> dict:
    """Build a FHIR HumanName from "NGUYỄN VĂN AN": family NGUYỄN, given [VĂN, AN], text kept whole."""
    text = " ".join(nfc(full_name).split())
    parts = text.split(" ")
    name: dict = {"use": "official", "text": text}
    if parts and parts[0]:
        name["family"] = parts[0]
    if len(parts) > 1:
        name["given"] = parts[1:]
    return name

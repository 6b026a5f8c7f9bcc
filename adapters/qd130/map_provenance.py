"""One Provenance per QĐ130 record: which file (name, SHA-256), which HOSO, vendor profile, adapter version."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from .context import Ctx


@lru_cache(maxsize=1)
def adapter_version() -> str:
    """The installed Lienthong version: the mapping code that produced the resources."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lienthong")
    except PackageNotFoundError:
        return "0+unknown"


def map_provenance(ctx: Ctx, record_payload: bytes, source: dict | None, created: str | None) -> dict:
    """Provenance targeting every resource of the Bundle.

    Deterministic (id from the record's SHA-256; `recorded` from the envelope's NGAYLAP, else the
    episode's dates), so re-sending the same file changes nothing, while a corrected re-send of the
    episode adds a Provenance of its own beside the first."""
    record_sha = hashlib.sha256(record_payload).hexdigest()
    targets = [
        {"reference": e["request"]["url"]}
        for e in ctx.entries
        if e["resource"]["resourceType"] != "Provenance"
    ]
    recorded = (
        (ctx.date(created) and f"{ctx.date(created)}T00:00:00+07:00")
        or ctx.dt(ctx.xml1.get("NGAY_TTOAN"))
        or ctx.dt(ctx.xml1.get("NGAY_RA"))
        or ctx.dt(ctx.xml1.get("NGAY_VAO"))
    )
    sha_system = ctx.idsys("sha256")
    entities = []
    if source and source.get("sha256"):
        entities.append(
            {
                "role": "source",
                "what": {
                    "identifier": {"system": sha_system, "value": source["sha256"]},
                    "display": f"Tệp {source.get('name') or '?'} (SHA-256 {source['sha256']})",
                },
            }
        )
    entities.append(
        {
            "role": "source",
            "what": {
                "identifier": {"system": sha_system, "value": record_sha},
                "display": f"Hồ sơ QĐ130 MA_LK {ctx.ma_lk} (SHA-256 {record_sha})",
            },
        }
    )
    prov: dict = {
        "resourceType": "Provenance",
        "id": ctx.rid("Provenance", "source", record_sha),
        "extension": [{"url": ctx.ext("vendor_profile"), "valueString": ctx.vendor.name}],
        "target": targets,
        "recorded": recorded or "1900-01-01T00:00:00+07:00",
        "activity": {"text": "Chuyển đổi hồ sơ QĐ 130/4750 sang FHIR (QĐ130 record converted to FHIR)"},
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "assembler",
                        }
                    ]
                },
                "who": {
                    "identifier": {"system": ctx.idsys("adapter"), "value": f"qd130@{adapter_version()}"},
                    "display": f"Lienthong qd130 {adapter_version()} (vendor profile {ctx.vendor.name})",
                },
            },
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": ctx.org(),
            },
        ],
        "entity": entities,
    }
    period = {
        k: v
        for k, v in (("start", ctx.dt(ctx.xml1.get("NGAY_VAO"))), ("end", ctx.dt(ctx.xml1.get("NGAY_RA"))))
        if v
    }
    if period:
        prov["occurredPeriod"] = period
    return ctx.add(prov)

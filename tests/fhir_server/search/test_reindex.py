"""$reindex: a SearchParameter added after data was loaded takes effect for old resources after reindex."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from fhir_server.interactions import bundles
from fhir_server.storage.sql.index_tables import sp_string
from tests.fhir_server.search.vn_data import resources, transaction


def test_reindex_applies_new_parameter(store) -> None:
    code = f"nick-{uuid.uuid4().hex[:8]}"  # the registry is process-wide: a fresh code per run
    bundles.transaction(store, transaction(resources()))
    nickname = {
        "resourceType": "SearchParameter",
        "id": code,
        "url": f"http://example.org/sp/{code}",
        "name": "nickname",
        "status": "active",
        "code": code,
        "description": "Tên thường gọi",
        "base": ["Patient"],
        "type": "string",
        "expression": "Patient.name.where(use='nickname').given",
    }
    p3 = next(r for r in resources() if r["id"] == "p3")
    p3["name"].append({"use": "nickname", "given": ["Cường Đô La"]})
    bundles.transaction(store, transaction([p3]))
    bundles.transaction(store, transaction([nickname]))  # registered now, after p3 was indexed
    assert store.find("Patient", [(code, "cuong do")]) == []
    assert store.reindex("Patient") == 4
    assert store.find("Patient", [(code, "cuong do")]) == ["p3"]
    # Reindexing replaces rows instead of duplicating them.
    assert store.reindex() >= 12
    with store.engine.connect() as conn:
        names = conn.execute(select(sp_string.c.value).where(sp_string.c.param == code)).scalars().all()
    assert names == ["cuong do la"]

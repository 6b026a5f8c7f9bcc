"""$reindex: a SearchParameter added after data was loaded takes effect for old resources after reindex."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from fhir_server.search.cli import reindex
from fhir_server.search.tables import sp_string
from tests.fhir_server.search.vn_data import resources, transaction


def test_reindex_applies_new_parameter(store) -> None:
    code = f"nick-{uuid.uuid4().hex[:8]}"  # the registry is process-wide: a fresh code per run
    store.transaction(transaction(resources()))
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
    store.transaction(transaction([p3]))
    store.transaction(transaction([nickname]))  # registered now, after p3 was indexed
    with store.engine.connect() as conn:
        assert store.search.find(conn, "Patient", [(code, "cuong do")]) == []
    assert reindex(store, "Patient") == 4
    with store.engine.connect() as conn:
        assert [i for _, i in store.search.find(conn, "Patient", [(code, "cuong do")])] == ["p3"]
        # Reindexing replaces rows instead of duplicating them.
        assert reindex(store) >= 12
        names = conn.execute(select(sp_string.c.value).where(sp_string.c.param == code)).scalars().all()
        assert names == ["cuong do la"]

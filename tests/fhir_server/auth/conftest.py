"""A secured app (LIENTHONG_AUTH=jwt with audience) and a little Vietnamese clinical data in it."""

from __future__ import annotations

import httpx
import pytest_asyncio

from lienthong.app import create_app
from tests.fhir_server.auth.helpers import AUDIENCE, SECRET, bearer
from tests.fhir_server.vn_data import observation, patient

ADMIN = bearer("system/*.cruds")


@pytest_asyncio.fixture
async def secured(settings, store):
    """httpx client over the real app with access control on."""
    app = create_app(settings.with_(auth_mode="jwt", jwt_secret=SECRET, jwt_audience=AUDIENCE), store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test/fhir",
        headers={"Content-Type": "application/fhir+json"},
    ) as c:
        yield c


@pytest_asyncio.fixture
async def records(secured):
    """Two patients (An, Bình), each with a glucose Observation; written with an all-access token."""
    for pid, name, cccd in (
        ("an", "NGUYỄN VĂN AN", "079090001234"),
        ("binh", "TRẦN THỊ BÌNH", "079185004321"),
    ):
        r = await secured.put(f"Patient/{pid}", json=patient(name, cccd, res_id=pid), headers=ADMIN)
        assert r.status_code in (200, 201), r.text
        r = await secured.put(
            f"Observation/obs-{pid}", json=observation(f"Patient/{pid}", res_id=f"obs-{pid}"), headers=ADMIN
        )
        assert r.status_code in (200, 201), r.text
    return {"an": "an", "binh": "binh"}

"""A health-department client (province claim) gets aggregates and exports of its own province only."""

from __future__ import annotations

import asyncio
import csv
import io

import httpx
import orjson
import pytest_asyncio

from fhir_server.reports.hook import attach_reports
from lienthong.app import create_app
from tests.fhir_server.auth.helpers import AUDIENCE, SECRET, bearer
from tests.fhir_server.reports.visits import BINH_DUONG, HA_NOI, visit_bundle

NAMES = ["Nguyễn Văn An", "Trần Thị Bích", "Lê Văn Hùng", "Phạm Thị Hoa", "Hoàng Văn Nam", "Võ Thị Lan"]
ADMIN = bearer("system/*.cruds")
SO_Y_TE_HCM = bearer("system/*.rs", province="79", sub="so-y-te-tphcm")
BO_Y_TE = bearer("system/*.rs", sub="bo-y-te")
HCM_PATIENTS = {f"bn-{i}" for i in range(5)}  # homes in Bình Dương (old 74), now TP Hồ Chí Minh (79)
HANOI_PATIENTS = {f"bn-{10 + i}" for i in range(5)}


@pytest_asyncio.fixture
async def dept(settings, store, tmp_path):
    """The secured app with report facts kept current, and a visit mix of two provinces."""
    attach_reports(store)
    secured = settings.with_(
        auth_mode="jwt",
        jwt_secret=SECRET,
        jwt_audience=AUDIENCE,
        export_dir=str(tmp_path / "exports"),
        export_retry_after=0,
    )
    app = create_app(secured, store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test/fhir", headers={"Accept-Language": "vi"}
    ) as c:
        bundles = [visit_bundle(i, name=NAMES[i], home=BINH_DUONG, facility="79001") for i in range(5)]
        bundles += [visit_bundle(10 + i, name=NAMES[i], home=HA_NOI, facility="01001") for i in range(5)]
        for b in bundles:
            r = await c.post("", json=b, headers=ADMIN)
            assert r.status_code == 200, r.text
        yield c


def _total(report: dict) -> int:
    return report["group"][0]["population"][0]["count"]


def _provinces(report: dict) -> set[str]:
    return {s["value"]["text"] for s in report["group"][0]["stratifier"][0]["stratum"]}


async def test_department_without_province_parameter_gets_its_province_only(dept):
    r = await dept.get("Measure/visits/$evaluate-measure?stratifier=province-new", headers=SO_Y_TE_HCM)
    assert r.status_code == 200, r.text
    assert _total(r.json()) == 5
    assert _provinces(r.json()) == {"79"}


async def test_department_asking_for_its_own_province_gets_it(dept):
    r = await dept.get("Measure/visits/$evaluate-measure?province=79&stratifier=month", headers=SO_Y_TE_HCM)
    assert r.status_code == 200 and _total(r.json()) == 5


async def test_department_asking_for_another_province_is_refused(dept):
    r = await dept.get("Measure/visits/$evaluate-measure?province=01", headers=SO_Y_TE_HCM)
    assert r.status_code == 403
    assert r.json()["resourceType"] == "OperationOutcome"
    assert "tỉnh" in r.json()["issue"][0]["diagnostics"]


async def test_ministry_token_without_province_sees_the_country_and_may_pick_one(dept):
    country = await dept.get("Measure/visits/$evaluate-measure?stratifier=province-new", headers=BO_Y_TE)
    assert _total(country.json()) == 10 and _provinces(country.json()) == {"01", "79"}
    hanoi = await dept.get("Measure/visits/$evaluate-measure?province=01", headers=BO_Y_TE)
    assert _total(hanoi.json()) == 5


async def test_csv_download_of_a_department_holds_its_province_only(dept):
    r = await dept.get(
        "Measure/visits/$evaluate-measure?stratifier=province-new&_format=csv", headers=SO_Y_TE_HCM
    )
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row["province_new"] for row in rows] == ["79"]
    assert "_79." in r.headers["content-disposition"]


async def test_xlsx_download_of_another_province_is_refused(dept):
    r = await dept.get("Measure/visits/$evaluate-measure?province=01&_format=xlsx", headers=SO_Y_TE_HCM)
    assert r.status_code == 403


async def test_report_page_of_a_department_shows_its_province_only(dept):
    r = await dept.get("http://test/ui/reports", headers=SO_Y_TE_HCM)
    assert r.status_code == 200, r.text
    assert "79 · Hồ Chí Minh" in r.text and "01 · Hà Nội" not in r.text
    assert 'id="province-scope"' in r.text


async def test_report_page_of_another_province_is_refused(dept):
    r = await dept.get("http://test/ui/reports?province=01", headers=SO_Y_TE_HCM)
    assert r.status_code == 403


async def _export(client, path: str, headers: dict) -> dict[str, set[str]]:
    r = await client.get(path, headers={**headers, "Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    status_url = r.headers["content-location"]
    for _ in range(2000):
        done = await client.get(status_url, headers=headers)
        if done.status_code != 202:
            break
        await asyncio.sleep(0.05)
    assert done.status_code == 200, done.text
    out: dict[str, set[str]] = {}
    for entry in done.json()["output"]:
        f = await client.get(entry["url"], headers=headers)
        out.setdefault(entry["type"], set()).update(orjson.loads(x)["id"] for x in f.content.splitlines())
    return out


async def test_system_export_of_a_department_is_its_province_patients_and_their_records(dept):
    got = await _export(dept, "$export", SO_Y_TE_HCM)
    assert got["Patient"] == HCM_PATIENTS
    assert got["Encounter"] == {f"lk-{i}" for i in range(5)}
    assert got["Condition"] == {f"dx-{i}" for i in range(5)}


async def test_patient_export_of_a_department_leaves_other_provinces_out(dept):
    got = await _export(dept, "Patient/$export?_type=Patient", SO_Y_TE_HCM)
    assert got["Patient"] == HCM_PATIENTS


async def test_group_export_of_a_department_keeps_only_its_members(dept):
    group = {
        "resourceType": "Group",
        "id": "sot-xuat-huyet",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": "Patient/bn-0"}}, {"entity": {"reference": "Patient/bn-10"}}],
    }
    assert (await dept.put("Group/sot-xuat-huyet", json=group, headers=ADMIN)).status_code == 201
    got = await _export(dept, "Group/sot-xuat-huyet/$export?_type=Patient", SO_Y_TE_HCM)
    assert got["Patient"] == {"bn-0"}


async def test_ministry_export_is_every_patient(dept):
    got = await _export(dept, "Patient/$export?_type=Patient", BO_Y_TE)
    assert got["Patient"] == HCM_PATIENTS | HANOI_PATIENTS

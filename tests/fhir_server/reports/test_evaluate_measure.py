"""Measure/$evaluate-measure: summaries by province (old or new), period, diagnosis; corrections; small cells."""

from __future__ import annotations

import io

import httpx
import pytest
from openpyxl import load_workbook

from fhir_server.api.app import create_app
from fhir_server.reports.hook import attach_reports
from fhir_server.settings import Settings

from .visits import BINH_DUONG, HA_NOI, HO_CHI_MINH, ICD10, visit_bundle

NAMES = ["Nguyễn Văn An", "Trần Thị Bích", "Lê Văn Hùng", "Phạm Thị Hoa", "Hoàng Văn Nam", "Võ Thị Lan"]


@pytest.fixture(autouse=True)
def _facts(store):
    """Facts kept current on every write, as lienthong/runtime.py wires it."""
    attach_reports(store)


async def _send(client, *bundles):
    for bundle in bundles:
        r = await client.post("", json=bundle)
        assert r.status_code == 200, r.text


def _strata(report: dict, index: int = 0) -> dict[str, int | None]:
    """stratum value -> count (None when withheld) of one stratifier."""
    out = {}
    for s in report["group"][0]["stratifier"][index]["stratum"]:
        pop = s["population"][0]
        out[s["value"]["text"]] = pop.get("count")
    return out


async def _evaluate(client, measure: str, **params) -> dict:
    r = await client.get(f"/Measure/{measure}/$evaluate-measure", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_visits_by_new_and_old_province(client):
    bundles = [visit_bundle(i, name=NAMES[i], home=BINH_DUONG) for i in range(5)]
    bundles += [visit_bundle(10 + i, name=NAMES[i], home=HO_CHI_MINH) for i in range(5)]
    await _send(client, *bundles)
    report = await _evaluate(client, "visits", stratifier="province-new,province-old")
    assert report["resourceType"] == "MeasureReport" and report["type"] == "summary"
    assert report["group"][0]["population"][0]["count"] == 10
    assert _strata(report, 0) == {"79": 10}  # Bình Dương merged into TP Hồ Chí Minh
    assert _strata(report, 1) == {"74": 5, "79": 5}


async def test_a_corrected_diagnosis_moves_the_visit_to_its_new_code(client):
    await _send(client, *[visit_bundle(i, name=NAMES[i], icd="J18.9") for i in range(6)])
    before = await _evaluate(client, "visits", stratifier="icd-code")
    assert _strata(before) == {"J18.9": 6}
    # the hospital re-sends visit 0 with dengue instead of pneumonia (same Condition id, new code)
    await _send(client, visit_bundle(0, name=NAMES[0], icd="A90"))
    after = await _evaluate(client, "visits", stratifier="icd-code,icd-chapter")
    # one dengue visit: withheld (< 5), and its partner too, as the total 6 is published
    assert _strata(after, 0) == {"A90": None, "J18.9": None}
    assert _strata(after, 1) == {"I": None, "X": None}
    cases = await _evaluate(client, "notifiable-cases", stratifier="notifiable-disease")
    assert cases["group"][0]["population"][0].get("count") is None  # 1 case: withheld


async def test_a_direct_condition_update_is_followed_too(client):
    await _send(client, *[visit_bundle(i, name=NAMES[i], icd="A91") for i in range(5)])
    cases = await _evaluate(client, "notifiable-cases", stratifier="notifiable-disease")
    assert _strata(cases) == {"dengue_haemorrhagic": 5}
    r = await client.put(
        "/Condition/dx-4",
        json={
            "resourceType": "Condition",
            "id": "dx-4",
            "subject": {"reference": "Patient/bn-4"},
            "encounter": {"reference": "Encounter/lk-4"},
            "code": {"coding": [{"system": ICD10, "code": "J06.9"}]},
        },
    )
    assert r.status_code == 200, r.text
    cases = await _evaluate(client, "notifiable-cases", stratifier="notifiable-disease")
    assert _strata(cases) == {"dengue_haemorrhagic": None}


async def test_small_cells_are_withheld_and_marked(client):
    await _send(client, *[visit_bundle(i, name=NAMES[i], home=HA_NOI) for i in range(3)])
    report = await _evaluate(client, "visits", stratifier="province-new")
    (stratum,) = report["group"][0]["stratifier"][0]["stratum"]
    pop = stratum["population"][0]
    assert "count" not in pop
    assert pop["extension"][0]["valueBoolean"] is True


async def test_the_minimum_cell_size_is_configurable(db_url, store):
    await_app = create_app(Settings(database_url=db_url, report_min_cell=2), store=store)
    transport = httpx.ASGITransport(app=await_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/fhir") as client:
        await _send(client, *[visit_bundle(i, name=NAMES[i], home=HA_NOI) for i in range(3)])
        report = await _evaluate(client, "visits", stratifier="province-new")
    assert _strata(report) == {"01": 3}


async def test_periods_month_quarter_and_a_period_filter(client):
    days = ["2024-01-05", "2024-01-20", "2024-02-03", "2024-02-04", "2024-02-05", "2024-02-06", "2024-02-07"]
    await _send(client, *[visit_bundle(i, name=NAMES[i % 6], start=d) for i, d in enumerate(days)])
    report = await _evaluate(client, "visits", stratifier="month,quarter")
    # February's 5 is withheld with January's 2: the quarter's 7 would give January away.
    assert _strata(report, 0) == {"2024-01": None, "2024-02": None}
    assert _strata(report, 1) == {"2024-Q1": 7}
    feb = await _evaluate(client, "visits", stratifier="month", periodStart="2024-02", periodEnd="2024-02")
    assert feb["group"][0]["population"][0]["count"] == 5
    assert feb["period"] == {"start": "2024-02-01", "end": "2024-02-29"}


async def test_average_length_of_stay_of_inpatients(client):
    # stays of 3, 3, 5, 5, 9 days (end - start + 1, the QĐ 130 rule): average 5
    stays = [("2024-03-01", "2024-03-03"), ("2024-03-02", "2024-03-04"), ("2024-03-01", "2024-03-05")]
    stays += [("2024-03-10", "2024-03-14"), ("2024-03-01", "2024-03-09")]
    await _send(
        client,
        *[visit_bundle(i, name=NAMES[i], cls="IMP", start=s, end=e) for i, (s, e) in enumerate(stays)],
    )
    report = await _evaluate(client, "average-length-of-stay", stratifier="class")
    assert report["group"][0]["measureScore"]["value"] == 5.0
    assert report["group"][0]["population"][0]["count"] == 5
    admissions = await _evaluate(client, "admissions", stratifier="sex")
    assert _strata(admissions) == {"male": 5}


async def test_referrals_in_by_age_band_and_bhyt(client):
    await _send(
        client,
        *[visit_bundle(i, name=NAMES[i], birth="2020-01-01", referred_from="74001") for i in range(5)],
    )
    report = await _evaluate(client, "referrals-in", stratifier="age-band,bhyt")
    assert _strata(report, 0) == {"1-4": 5}
    assert _strata(report, 1) == {"1": 5}


async def test_csv_download_with_withheld_cells(client):
    bundles = [visit_bundle(i, name=NAMES[i], home=BINH_DUONG, start="2024-05-07") for i in range(5)]
    bundles.append(visit_bundle(9, name="Đặng Thị Mai", home=HA_NOI, start="2024-05-08"))
    await _send(client, *bundles)
    r = await client.get(
        "/Measure/visits/$evaluate-measure", params={"stratifier": "province-new+month", "_format": "csv"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.content.decode("utf-8-sig").splitlines()
    # 79's 5 is withheld too: with the published total of 6 it would give Hà Nội's 1 away.
    assert lines == ["province_new,month,value", "01,2024-05,<5", "79,2024-05,<5"]


async def test_xlsx_download(client):
    await _send(client, *[visit_bundle(i, name=NAMES[i]) for i in range(5)])
    r = await client.get("/Measure/visits/$evaluate-measure", params={"stratifier": "sex", "_format": "xlsx"})
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [["sex", "value"], ["male", 5]]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/Measure/khong-co/$evaluate-measure", 404),
        ("/Measure/visits/$evaluate-measure?stratifier=tinh", 400),
        ("/Measure/visits/$evaluate-measure?periodStart=2024-13", 400),
        ("/Measure/visits/$evaluate-measure?periodStart=2024-05-01&periodEnd=2024-04-01", 400),
        ("/Measure/visits/$evaluate-measure?reportType=subject-list", 400),
        ("/Measure/visits/$evaluate-measure?_format=pdf", 400),
    ],
)
async def test_bad_parameters_are_operation_outcomes(client, path, status):
    r = await client.get(path)
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"

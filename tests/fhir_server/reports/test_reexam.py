"""Re-exam appointments kept / missed / pending, from QĐ130 files (NGAY_TAI_KHAM), in every summary."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from fhir_server.reports.hook import attach_reports, rebuild
from fhir_server.reports.reexam import ReexamRule
from fhir_server.settings import Settings
from lienthong.app import create_app
from lienthong.cli import app as cli

from .qd130_visits import qd130_visit

VISIT = dt.date(2024, 3, 15)  # the sample's visit day
HEN = dt.date(2024, 4, 15)  # the re-exam date written on it
POP = "http://terminology.hl7.org/CodeSystem/measure-population"


@pytest.fixture
def settings(db_url) -> Settings:
    """Every count published (min cell 1) so one appointment can be followed; suppression tested apart."""
    return Settings(database_url=db_url, report_min_cell=1)


@pytest.fixture(autouse=True)
def _facts(store):
    attach_reports(store)  # the default rule: −3/+7 days, at the facility that gave the appointment


async def _ingest(client, *files: bytes) -> None:
    for payload in files:
        r = await client.post("http://test/ingest/qd130", content=payload)
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


async def _counts(client, **params) -> dict[str, int | None]:
    """kept / missed / pending / all, as published."""
    out = {}
    for name in ("kept", "missed", "pending", "appointments"):
        r = await client.get(
            f"/Measure/reexam-{name}/$evaluate-measure", params={"stratifier": "month", **params}
        )
        assert r.status_code == 200, r.text
        out[name] = r.json()["group"][0]["population"][0].get("count")
    return out


async def test_a_visit_inside_the_window_keeps_the_appointment(client):
    await _ingest(
        client, qd130_visit(1, VISIT, reexam=HEN), qd130_visit(1, HEN + dt.timedelta(days=2), "KB02")
    )
    assert await _counts(client) == {"kept": 1, "missed": 0, "pending": 0, "appointments": 1}


async def test_a_visit_that_arrives_before_its_appointment_still_keeps_it(client):
    # the re-exam visit's file reaches the server first, the file that gave the appointment a week later
    await _ingest(
        client, qd130_visit(1, HEN - dt.timedelta(days=1), "KB02"), qd130_visit(1, VISIT, reexam=HEN)
    )
    assert await _counts(client) == {"kept": 1, "missed": 0, "pending": 0, "appointments": 1}


async def test_no_visit_in_a_closed_window_is_missed(client):
    late = HEN + dt.timedelta(days=8)  # one day after the window (+7)
    await _ingest(client, qd130_visit(1, VISIT, reexam=HEN), qd130_visit(1, late, "KB02"))
    assert await _counts(client) == {"kept": 0, "missed": 1, "pending": 0, "appointments": 1}


async def test_an_appointment_whose_window_is_still_open_is_pending(client):
    today = dt.date.today()
    await _ingest(client, qd130_visit(1, today - dt.timedelta(days=20), reexam=today + dt.timedelta(days=10)))
    assert await _counts(client) == {"kept": 0, "missed": 0, "pending": 1, "appointments": 1}


async def test_the_visit_that_gave_the_appointment_does_not_keep_it(client):
    soon = VISIT + dt.timedelta(days=2)  # re-exam two days later: the giving visit lies inside the window
    await _ingest(client, qd130_visit(1, VISIT, reexam=soon))
    assert await _counts(client) == {"kept": 0, "missed": 1, "pending": 0, "appointments": 1}


async def test_a_visit_of_another_patient_does_not_keep_it(client):
    await _ingest(client, qd130_visit(1, VISIT, reexam=HEN), qd130_visit(2, HEN, "KB02"))
    assert (await _counts(client))["kept"] == 0


async def test_deleting_the_keeping_visit_makes_the_appointment_missed_again(client):
    await _ingest(client, qd130_visit(1, VISIT, reexam=HEN), qd130_visit(1, HEN, "KB02"))
    r = await client.get("/Encounter", params={"date": HEN.isoformat()})
    (entry,) = r.json()["entry"]
    assert (await client.delete(f"/Encounter/{entry['resource']['id']}")).status_code in (200, 204)
    assert await _counts(client) == {"kept": 0, "missed": 1, "pending": 0, "appointments": 1}


async def test_a_corrected_visit_date_moves_the_appointment_to_missed(client):
    await _ingest(client, qd130_visit(1, VISIT, reexam=HEN), qd130_visit(1, HEN, "KB02"))
    assert (await _counts(client))["kept"] == 1
    # the hospital re-sends the same visit (same MA_LK) with the day it really happened: 20 days late
    await _ingest(client, qd130_visit(1, HEN + dt.timedelta(days=20), "KB02"))
    assert (await client.get("/Encounter", params={"_summary": "count"})).json()["total"] == 2
    assert await _counts(client) == {"kept": 0, "missed": 1, "pending": 0, "appointments": 1}


async def test_a_visit_elsewhere_counts_only_when_the_scope_is_any_facility(client, store):
    await _ingest(client, qd130_visit(1, VISIT, reexam=HEN), qd130_visit(1, HEN, "KB02", facility="79001"))
    by_facility = await _counts(client, stratifier="facility")
    assert by_facility["kept"] == 0 and by_facility["missed"] == 1
    rebuild(store, rule=ReexamRule(scope="any"))  # what `lienthong report rebuild` does after the setting
    assert (await _counts(client))["kept"] == 1


async def test_the_measure_report_scores_kept_over_kept_plus_missed_per_facility(client):
    files = [qd130_visit(n, VISIT, reexam=HEN) for n in range(1, 5)]
    files += [qd130_visit(n, HEN, "KB02") for n in (1, 2, 3)]  # patient 4 never came back
    await _ingest(client, *files)
    r = await client.get("/Measure/reexam-appointments/$evaluate-measure", params={"stratifier": "facility"})
    group = r.json()["group"][0]
    pops = {p["code"]["coding"][0]["code"]: p.get("count") for p in group["population"]}
    assert pops == {"initial-population": 4, "denominator": 4, "denominator-exclusion": 0, "numerator": 3}
    assert group["measureScore"]["value"] == 0.75
    (stratum,) = group["stratifier"][0]["stratum"]
    assert stratum["value"]["text"] == "79999" and stratum["measureScore"]["value"] == 0.75


async def test_small_counts_are_withheld_in_the_report_and_the_csv(store, db_url):
    import httpx

    app = create_app(Settings(database_url=db_url), store=store)  # the default minimum cell: 5
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/fhir") as c:
        files = [qd130_visit(n, VISIT, reexam=HEN) for n in range(1, 7)]
        files += [qd130_visit(n, HEN, "KB02") for n in range(1, 6)]  # 5 kept, 1 missed
        await _ingest(c, *files)
        r = await c.get("/Measure/reexam-appointments/$evaluate-measure", params={"stratifier": "province"})
        pops = {p["code"]["coding"][0]["code"]: p for p in r.json()["group"][0]["population"]}
        assert pops["initial-population"]["count"] == 6 and pops["numerator"]["count"] == 5
        assert "count" not in pops["denominator"]  # 5 + a withheld 1 would give the 1 away
        assert "measureScore" not in r.json()["group"][0]
        csv = await c.get(
            "/Measure/reexam-missed/$evaluate-measure", params={"stratifier": "province", "_format": "csv"}
        )
        assert csv.text.lstrip("\ufeff").splitlines() == ["province_new,value", "79,<5"]


async def test_xlsx_download_by_month(client):
    await _ingest(client, qd130_visit(1, VISIT, reexam=HEN), qd130_visit(1, HEN, "KB02"))
    r = await client.get(
        "/Measure/reexam-kept/$evaluate-measure", params={"stratifier": "month", "_format": "xlsx"}
    )
    rows = list(load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))
    assert rows == [("month", "value"), ("2024-04", 1)]


async def test_a_diagnosis_stratifier_is_refused_for_appointments(client):
    r = await client.get("/Measure/reexam-kept/$evaluate-measure", params={"stratifier": "icd-code"})
    assert r.status_code == 400
    assert "icd-code" in r.json()["issue"][0]["diagnostics"]


async def test_the_cli_and_the_web_page_show_missed_appointments(client, db_url):
    await _ingest(client, qd130_visit(1, VISIT, reexam=HEN))
    out = CliRunner().invoke(
        cli, ["report", "show", "reexam-missed", "--by", "province-new", "--min-cell", "1", "--db", db_url]
    )
    assert out.exit_code == 0, out.output
    assert "Hẹn tái khám bỏ lỡ" in out.output and "│ 79" in out.output and "│ 1" in out.output
    page = await client.get("http://test/ui/reports", params={"measure": "reexam-missed"})
    assert page.status_code == 200 and "Hẹn tái khám bỏ lỡ" in page.text and "79 · Hồ Chí Minh" in page.text

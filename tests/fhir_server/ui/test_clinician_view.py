"""Clinician view on SQLite and PostgreSQL: the view model, search, escaping, and a real headless Chromium."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from fhir_server.ui.view import patient_view
from tests.fhir_server.operations import vn_record as rec

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


def test_view_puts_both_hospitals_on_one_timeline(store):
    rec.load_and_link(store)
    v = patient_view(store, rec.PB)
    assert [r["hospital"] for r in v["records"]] == ["Bệnh viện Bạch Mai", "Bệnh viện Chợ Rẫy"]
    assert v["cccd"] == "079090001234" and v["bhyt"] == "DN4797912345678"
    timeline = v["timeline"]
    assert [(e.hospital, e.start) for e in timeline] == [
        ("Bệnh viện Bạch Mai", "10/09/2024 09:00"),
        ("Bệnh viện Chợ Rẫy", "01/03/2024 08:00"),
    ]
    glucose = timeline[1].observations[0]
    assert (glucose["name"], glucose["value"], glucose["unit"], glucose["range"]) == (
        "Glucose máu lúc đói",
        "9.4",
        "mmol/L",
        "3.9 – 6.4 mmol/L",
    )
    assert timeline[0].kind == "Điều trị nội trú"
    assert {(d["code"], d["name"], tuple(d["hospitals"])) for d in v["diagnoses"]} == {
        ("E11.9", "Đái tháo đường type 2 không biến chứng", ("Bệnh viện Chợ Rẫy",)),
        ("I10", "Tăng huyết áp vô căn", ("Bệnh viện Bạch Mai",)),
    }
    assert timeline[1].drugs[0]["name"] == "Metformin 500mg"
    assert (
        v["referrals"][0]["from"] == "Bệnh viện Chợ Rẫy" and v["referrals"][0]["to"] == "Bệnh viện Bạch Mai"
    )
    # The Appointment names no organization: its identifier system carries the facility code 01001.
    assert v["appointments"] == [
        {
            "date": "01/10/2024 08:00",
            "sort": v["appointments"][0]["sort"],
            "status": "booked",
            "description": "Hẹn tái khám",
            "hospital": "Bệnh viện Bạch Mai",
        }
    ]


@pytest.mark.asyncio
async def test_search_is_accent_insensitive_and_finds_identifiers(client, store):
    rec.load_and_link(store)
    for q, expected in (
        ("nguyen van an", {rec.PA, rec.PB}),
        ("NGUYỄN VĂN", {rec.PA, rec.PB}),
        ("079090001234", {rec.PA, rec.PB}),
        ("DN4797912345678", {rec.PA}),
        ("tran thi binh", {rec.PC}),
        ("le thi khong co", set()),
    ):
        r = await client.get("http://test/ui", params={"q": q})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-store"
        assert set(re.findall(r'href="/ui/patient/([^"]+)"', r.text)) == expected, q


@pytest.mark.asyncio
async def test_patient_data_is_html_escaped(client, store):
    rec.load_and_link(store)
    evil = {
        "resourceType": "Patient",
        "id": "bn-xss",
        "name": [{"text": "<script>alert('x')</script> LÊ VĂN"}],
        "identifier": [{"system": rec.CCCD, "value": "079090009999"}],
    }
    (await client.put("/Patient/bn-xss", json=evil)).raise_for_status()
    (
        await client.put(
            "/Observation/obs-xss",
            json={
                "resourceType": "Observation",
                "id": "obs-xss",
                "status": "final",
                "code": {"text": "<img src=x onerror=1>"},
                "subject": {"reference": "Patient/bn-xss"},
                "valueString": '"><b>đậm</b>',
            },
        )
    ).raise_for_status()
    page = (await client.get("http://test/ui/patient/bn-xss")).text
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; LÊ VĂN" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=1&gt;" in page and "<b>đậm</b>" not in page
    found = (await client.get("http://test/ui", params={"q": "079090009999"})).text
    assert "<script>alert" not in found and "&lt;script&gt;" in found
    missing = await client.get("http://test/ui/patient/khong-co")
    assert missing.status_code == 404 and "Không tìm thấy bệnh nhân" in missing.text


def test_browser_search_and_timeline(live_server, store):
    """Real headless Chromium: search without accents, open the patient, read the cross-hospital timeline."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing on CI (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium) and CI is not 'true'")
    from playwright.sync_api import sync_playwright

    rec.load_and_link(store)
    root = live_server.rsplit("/fhir", 1)[0]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="vi-VN")
            page.goto(f"{root}/ui")
            page.fill("input[name=q]", "nguyen van an")
            page.click("button[type=submit]")
            page.wait_for_selector("#results")
            assert page.locator("#results tbody tr").count() == 2
            page.locator("#results a", has_text="Xem hồ sơ").first.click()
            page.wait_for_selector("#timeline")
            assert page.locator("#patient-name").inner_text().upper() == "NGUYỄN VĂN AN"
            cards = page.locator("#timeline article")
            assert cards.count() == 2
            timeline = page.locator("#timeline").inner_text()
            assert "Bệnh viện Chợ Rẫy" in timeline and "Bệnh viện Bạch Mai" in timeline
            assert "10/09/2024" in timeline and "01/03/2024" in timeline
            row = page.locator("table.obs tr", has_text="Glucose máu lúc đói").inner_text()
            assert "9.4" in row and "mmol/L" in row and "3.9 – 6.4" in row
            diagnoses = page.locator("#diagnoses").inner_text()
            assert "E11.9" in diagnoses and "Đái tháo đường type 2" in diagnoses and "I10" in diagnoses
            assert "Hẹn tái khám" in page.locator("#appointments").inner_text()
            page.screenshot(path=str(ARTIFACTS / "clinician-view.png"), full_page=True)
        finally:
            browser.close()

"""Issue 17 in a real headless Chromium (Playwright), on SQLite and PostgreSQL, against a live uvicorn server.

Screenshots go to tests/artifacts/ (a few are committed and shown in docs/clinician-view.md).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fhir_server.settings import Settings
from tests.fhir_server.ui import three_hospitals as hoa

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
NOW = datetime.now(UTC)
ICD10_CSV = (
    "code,name_vi,name_en\n"
    "E11.9,Bệnh đái tháo đường type 2 không biến chứng,\n"
    "N18.3,Bệnh thận mạn giai đoạn 3,\n"
    "I10,Tăng huyết áp vô căn (nguyên phát),\n"
    "E11.6,Bệnh đái tháo đường type 2 có biến chứng khác,\n"
    "R73.9,Tăng đường huyết không đặc hiệu,\n"
)


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    """The app's settings with a small ICD-10 list configured (LIENTHONG_ICD10_PATH)."""
    path = tmp_path / "icd10-vn.csv"
    path.write_text(ICD10_CSV, encoding="utf-8")
    return Settings(database_url=db_url, icd10_path=str(path))


@contextmanager
def chromium():
    """A headless Debian Chromium driven by Playwright (skipped off CI when it is not installed)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing on CI (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium) and CI is not 'true'")
    from playwright.sync_api import sync_playwright

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
            yield browser
        finally:
            browser.close()


def _shot(page, name: str, db_url: str, **kw) -> None:
    """Save a screenshot; the SQLite run's copy is the one kept in the repository."""
    ARTIFACTS.mkdir(exist_ok=True)
    suffix = "" if db_url.startswith("sqlite") else "-pg"
    page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"), **kw)


def test_browser_summary_header_highlights_the_allergy(live_server, store, db_url):
    hoa.load_and_link(store, NOW)
    root = live_server.rsplit("/fhir", 1)[0]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="vi-VN")
        page.goto(f"{root}/ui/patient/{hoa.MAIN}")
        allergies = page.locator("#allergies")
        assert "Penicillin" in allergies.inner_text() and "Nguy cơ cao" in allergies.inner_text()
        # highlighted: a red frame on a tinted background
        assert allergies.evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(164, 22, 26)"
        problems = page.locator("#problems").inner_text()
        assert "E11.9 Bệnh đái tháo đường type 2 không biến chứng" in problems
        assert "Insulin glargine" in page.locator("#medications").inner_text()
        vitals = page.locator("#last-vitals").inner_text()
        assert "130/80" in vitals and "mmHg" in vitals and "l/p" in vitals
        assert "Hẹn tái khám" in page.locator("#upcoming").inner_text()
        assert "Còn hạn" in page.locator("#coverage").inner_text()
        _shot(page, "clinician-summary", db_url)


def test_browser_summary_header_without_allergies(live_server, store, db_url):
    hoa.load_and_link(store, NOW, allergy=False)
    root = live_server.rsplit("/fhir", 1)[0]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 820, "height": 1100}, locale="vi-VN")  # a tablet
        page.goto(f"{root}/ui/patient/{hoa.MAIN}")
        assert "Không ghi nhận dị ứng" in page.locator("#allergies").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 820  # no sideways scrolling
        _shot(page, "clinician-summary-no-allergy-tablet", db_url)


def test_browser_patient_at_three_hospitals(live_server, store, db_url):
    hoa.load_and_link(store, NOW)
    root = live_server.rsplit("/fhir", 1)[0]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="vi-VN")
        page.goto(f"{root}/ui/patient/{hoa.MAIN}")
        assert page.locator("#records tbody tr").count() == 3
        assert page.locator("#timeline article").count() == 3
        timeline = page.locator("#timeline").inner_text()
        for name in ("Bệnh viện Chợ Rẫy", "Bệnh viện Bạch Mai", "Bệnh viện Đa khoa tỉnh Bắc Kạn"):
            assert name in timeline
        assert "CSKCB" not in timeline
        # the 8-day stay is folded; opening it shows the vitals grid, panels, the case conference
        stay = page.locator("#timeline article", has_text="Bệnh viện Bạch Mai")
        assert not stay.locator("table.vitals-grid").is_visible()
        stay.locator("details.stay > summary").click()
        grid = stay.locator("table.vitals-grid").inner_text()
        assert "Mạch (l/p)" in grid and "Huyết áp (mmHg)" in grid and "160/100" in grid
        assert "Heart rate" not in page.content()
        assert "Hội chẩn khoa Thận" in stay.inner_text() and "PHẠM MINH ĐỨC" in stay.inner_text()
        row = stay.locator("table.labs tr", has_text="Creatinin máu")
        assert "135" in row.inner_text() and "flag-h" in (row.locator("td.num").get_attribute("class") or "")
        assert page.locator("#vital-charts svg").count() == 4
        _shot(page, "clinician-three-hospitals", db_url, full_page=True)
        # filter the timeline to one hospital through the form
        page.select_option("select[name=hospital]", "Bệnh viện Chợ Rẫy")
        page.click("#filters button[type=submit]")
        page.wait_for_url(re.compile(r"hospital="))
        assert page.locator("#timeline article").count() == 1


def test_browser_lab_trend_chart_has_points_from_two_hospitals(live_server, store, db_url):
    hoa.load_and_link(store, NOW)
    root = live_server.rsplit("/fhir", 1)[0]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="vi-VN")
        page.goto(f"{root}/ui/patient/{hoa.MAIN}")
        trend = page.locator("#trend-loinc-14682-9")  # creatinine: Chợ Rẫy, then Bạch Mai
        trend.locator("summary").click()
        points = trend.locator("svg circle")
        assert points.count() == 2
        colours = {points.nth(i).get_attribute("fill") for i in range(2)}
        assert len(colours) == 2  # each point in its hospital's colour
        titles = trend.locator("svg circle title").all_text_contents()
        assert any("Bệnh viện Chợ Rẫy" in t for t in titles) and any(
            "Bệnh viện Bạch Mai" in t for t in titles
        )
        trend.scroll_into_view_if_needed()
        trend.screenshot(
            path=str(ARTIFACTS / f"clinician-lab-trend{'' if db_url.startswith('sqlite') else '-pg'}.png")
        )


def test_browser_print_view_fits_one_a4_page(live_server, store, db_url):
    hoa.load_and_link(store, NOW)
    root = live_server.rsplit("/fhir", 1)[0]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 794, "height": 1123}, locale="vi-VN")
        page.goto(f"{root}/ui/patient/{hoa.MAIN}?print=1")
        assert "Penicillin" in page.locator("#print-allergies").inner_text()
        page.emulate_media(media="print")
        pdf = page.pdf(format="A4", print_background=True)
        assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1
        _shot(page, "clinician-print", db_url, full_page=True)

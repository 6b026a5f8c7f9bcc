"""Issue 17: what a doctor receiving a referred patient reads first, on SQLite and PostgreSQL.

The person is TRẦN THỊ HOA, seen at Chợ Rẫy, Bạch Mai (8-day stay) and Bắc Kạn (tests/…/three_hospitals.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from fhir_server.settings import Settings
from fhir_server.ui.view import patient_view
from tests.fhir_server.ui import three_hospitals as hoa

NOW = datetime.now(UTC)
ICD10_CSV = (
    "code,name_vi,name_en\n"
    "E11.9,Bệnh đái tháo đường type 2 không biến chứng,\n"
    "N18.3,Bệnh thận mạn giai đoạn 3,\n"
    "I10,Tăng huyết áp vô căn (nguyên phát),\n"
)


@pytest.fixture
def icd10_path(tmp_path) -> str:
    """A small ICD-10 list in this project's layout (the real one is the Ministry's, loaded by the operator)."""
    path = tmp_path / "icd10-vn.csv"
    path.write_text(ICD10_CSV, encoding="utf-8")
    return str(path)


@pytest.fixture
def settings(db_url, icd10_path) -> Settings:
    """The app's settings with the ICD-10 list configured (LIENTHONG_ICD10_PATH)."""
    return Settings(database_url=db_url, icd10_path=icd10_path)


def _view(store, icd10_path=None, **filters):
    return patient_view(store, hoa.MAIN, icd10_path, filters, int(NOW.timestamp() * 1_000_000))


def test_hospitals_sent_as_codes_are_named_from_the_facility_registry(store):
    hoa.load_and_link(store, NOW)
    v = _view(store)
    assert sorted(r["hospital"] for r in v["records"]) == [
        "Bệnh viện Bạch Mai",
        "Bệnh viện Chợ Rẫy",
        "Bệnh viện Đa khoa tỉnh Bắc Kạn",
    ]
    assert not any("CSKCB" in e.hospital for e in v["timeline"])


def test_allergy_is_in_the_summary_with_reaction_and_criticality(store):
    hoa.load_and_link(store, NOW)
    [allergy] = _view(store)["allergies"]
    assert (allergy["substance"], allergy["reactions"], allergy["criticality"], allergy["hospital"]) == (
        "Penicillin",
        "Phát ban, khó thở",
        "Nguy cơ cao",
        "Bệnh viện Chợ Rẫy",
    )


@pytest.mark.asyncio
async def test_page_says_no_allergy_recorded_when_none_is_known(client, store):
    hoa.load_and_link(store, NOW, allergy=False)
    page = (await client.get(f"http://test/ui/patient/{hoa.MAIN}")).text
    section = page.split('id="allergies"', 1)[1].split("</section>", 1)[0]
    assert "Không ghi nhận dị ứng" in section and "Penicillin" not in section


def test_active_problems_carry_vietnamese_icd10_names_and_every_hospital(store, icd10_path):
    hoa.load_and_link(store, NOW)
    problems = {p["code"]: p for p in _view(store, icd10_path)["problems"]}
    assert problems["E11.9"]["name"] == "Bệnh đái tháo đường type 2 không biến chứng"
    assert sorted(problems["E11.9"]["hospitals"]) == [
        "Bệnh viện Bạch Mai",
        "Bệnh viện Chợ Rẫy",
        "Bệnh viện Đa khoa tỉnh Bắc Kạn",
    ]
    assert problems["N18.3"]["name"] == "Bệnh thận mạn giai đoạn 3"  # a secondary code sent without a name
    assert list(problems)[0] == "E11.9"  # the most recent first


def test_initial_diagnosis_of_an_outpatient_visit_is_not_labelled_admission(store):
    hoa.load_and_link(store, NOW)
    visits = {e.id: e for e in _view(store)["timeline"]}
    roles = {d["code"]: d["role"] for d in visits["enc-cr-1"].diagnoses}
    assert roles == {"E11.9": "Chính", "R73.9": "Ban đầu", "I10": "Kèm theo"}
    assert {d["code"]: d["role"] for d in visits["enc-bm-1"].diagnoses}["E11.6"] == "Nhập viện"


def test_current_medications_are_each_hospitals_latest_prescription(store):
    hoa.load_and_link(store, NOW)
    meds = [(m["name"], m["date"], m["hospital"]) for m in _view(store)["medications"]]
    assert meds == [
        ("Amlodipin 5mg", "18/09/2024 09:00", "Bệnh viện Bạch Mai"),
        ("Insulin glargine 100 UI/ml", "18/09/2024 09:00", "Bệnh viện Bạch Mai"),
        ("Metformin 500mg", "01/03/2024 09:30", "Bệnh viện Chợ Rẫy"),
    ]


def test_summary_has_upcoming_re_exam_open_referral_and_a_valid_card(store):
    hoa.load_and_link(store, NOW)
    v = _view(store)
    assert [(a["description"], a["hospital"]) for a in v["upcoming"]] == [
        ("Hẹn tái khám", "Bệnh viện Đa khoa tỉnh Bắc Kạn")
    ]
    assert [(r["from"], r["to"], r["reason"]) for r in v["open_referrals"]] == [
        ("Bệnh viện Bạch Mai", "Bệnh viện Đa khoa tỉnh Bắc Kạn", "N18.3")
    ]
    assert v["coverage"]["number"] == "HT2010185004321" and v["coverage"]["valid"] is True
    later = patient_view(
        store, hoa.MAIN, None, {}, int(datetime(NOW.year + 3, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    )
    assert later["coverage"]["valid"] is False and later["upcoming"] == []


def test_last_vital_signs_use_vietnamese_labels_and_units(store):
    hoa.load_and_link(store, NOW)
    last = {s["label"]: (s["value"], s["unit"], s["hospital"]) for s in _view(store)["last_vitals"]}
    assert last["Huyết áp"] == ("130/80", "mmHg", "Bệnh viện Đa khoa tỉnh Bắc Kạn")
    assert last["Mạch"] == ("76", "l/p", "Bệnh viện Đa khoa tỉnh Bắc Kạn")
    assert last["Nhiệt độ"] == ("37.2", "°C", "Bệnh viện Bạch Mai")
    assert last["SpO2"] == ("95", "%", "Bệnh viện Bạch Mai")


def test_vital_signs_form_a_grid_per_visit_and_stay_out_of_the_lab_tables(store):
    hoa.load_and_link(store, NOW)
    stay = next(e for e in _view(store)["timeline"] if e.id == "enc-bm-1")
    assert [label for _, label in stay.vital_columns] == [
        "Mạch (l/p)",
        "Nhiệt độ (°C)",
        "Huyết áp (mmHg)",
        "SpO2 (%)",
    ]
    assert [(r["date"], r["values"]) for r in stay.vital_rows] == [
        ("10/09/2024 09:10", {"pulse": "96", "spo2": "95", "bp": "160/100"}),
        ("17/09/2024 08:00", {"pulse": "80", "temp": "37.2", "bp": "135/85"}),
    ]
    assert {o["name"] for p in stay.panels for o in p["items"]} == {
        "Glucose máu",
        "Creatinin máu",
        "Huyết sắc tố (HGB)",
    }
    assert all(o["category_code"] != "vital-signs" for o in stay.observations)


def test_vital_charts_are_inline_svg_with_a_point_per_measurement(store):
    hoa.load_and_link(store, NOW)
    charts = {c["key"]: str(c["svg"]) for c in _view(store)["vital_charts"]}
    assert list(charts) == ["bp", "pulse", "temp", "weight"]
    assert charts["bp"].startswith("<svg") and charts["bp"].count("<circle") == 8  # 4 readings x sys/dia
    assert charts["bp"].count("<polyline") == 2


def test_labs_are_grouped_by_panel_with_range_and_flag(store):
    hoa.load_and_link(store, NOW)
    stay = next(e for e in _view(store)["timeline"] if e.id == "enc-bm-1")
    panels = {
        p["name"]: {o["name"]: (o["value"], o["unit"], o["range"], o["flag"]) for o in p["items"]}
        for p in stay.panels
    }
    assert set(panels) == {"Huyết học", "Sinh hoá máu"}
    assert panels["Sinh hoá máu"]["Creatinin máu"] == ("135", "µmol/L", "53 – 100 µmol/L", "H")
    assert panels["Huyết học"]["Huyết sắc tố (HGB)"] == ("105", "g/L", "120 – 150 g/L", "L")


def test_lab_trend_follows_one_test_across_visits_and_hospitals(store):
    hoa.load_and_link(store, NOW)
    trend = next(t for t in _view(store)["lab_trends"] if t["key"] == "loinc:14749-6")
    assert [(p["value"], p["hospital"], p["flag"]) for p in trend["points"]] == [
        ("9.4", "Bệnh viện Chợ Rẫy", "H"),
        ("7.1", "Bệnh viện Bạch Mai", "H"),
        ("6", "Bệnh viện Đa khoa tỉnh Bắc Kạn", ""),
    ]
    svg = str(trend["svg"])
    assert svg.count("<circle") == 3 and "Bệnh viện Chợ Rẫy" in svg and "Bệnh viện Bạch Mai" in svg
    assert svg.count('class="ref-range"') == 1  # 3.9 – 6.4 mmol/L shaded behind the points


def test_documents_are_shown_per_visit_with_author_and_hospital(store):
    hoa.load_and_link(store, NOW)
    stay = next(e for e in _view(store)["timeline"] if e.id == "enc-bm-1")
    docs = [(d["kind"], d["title"], d["author"], d["hospital"]) for d in stay.documents]
    assert docs == [
        ("Diễn biến bệnh", "Diễn biến bệnh", "PHẠM MINH ĐỨC", "Bệnh viện Bạch Mai"),
        ("Hội chẩn", "Hội chẩn", "PHẠM MINH ĐỨC", "Bệnh viện Bạch Mai"),
        ("Giấy tờ", "Giấy ra viện", "PHẠM MINH ĐỨC", "Bệnh viện Bạch Mai"),
        ("Kết luận, lời dặn", "Kết luận đợt điều trị", "PHẠM MINH ĐỨC", "Bệnh viện Bạch Mai"),
    ]
    advice = next(d for d in stay.documents if d["kind"] == "Kết luận, lời dặn")
    assert any(line.startswith("Lời dặn của bác sĩ: ăn giảm muối") for line in advice["lines"])
    paper = next(d for d in stay.documents if d["title"] == "Giấy ra viện")
    assert paper["lines"] == ["Phương pháp điều trị: Insulin nền, kiểm soát huyết áp"]


def test_a_long_stay_is_folded_and_a_short_visit_is_not(store):
    hoa.load_and_link(store, NOW)
    folded = {e.id: e.long for e in _view(store)["timeline"]}
    assert folded == {"enc-bk-1": False, "enc-bm-1": True, "enc-cr-1": False}


def test_timeline_filters_by_hospital_type_and_period(store):
    hoa.load_and_link(store, NOW)
    assert [e.id for e in _view(store, hospital="Bệnh viện Chợ Rẫy")["shown"]] == ["enc-cr-1"]
    assert [e.id for e in _view(store, type="documents")["shown"]] == ["enc-bm-1"]
    assert [e.id for e in _view(store, since="2024-09-01", until="2024-12-31")["shown"]] == ["enc-bm-1"]
    # the summary still covers everything
    assert len(_view(store, hospital="Bệnh viện Chợ Rẫy")["problems"]) >= 3


def test_timeline_shows_the_newest_visits_and_the_rest_on_request(store):
    hoa.load_and_link(store, NOW)
    now = int(NOW.timestamp() * 1_000_000)
    first = patient_view(store, hoa.MAIN, None, {}, now, page_visits=2)
    assert [e.id for e in first["shown"]] == ["enc-bk-1", "enc-bm-1"] and first["more_visits"] == 1
    every = patient_view(store, hoa.MAIN, None, {"all": "1"}, now, page_visits=2)
    assert [e.id for e in every["shown"]] == ["enc-bk-1", "enc-bm-1", "enc-cr-1"] and every[
        "more_visits"
    ] == 0


@pytest.mark.asyncio
async def test_malformed_filters_are_ignored_and_the_page_still_answers(client, store):
    hoa.load_and_link(store, NOW)
    r = await client.get(
        f"http://test/ui/patient/{hoa.MAIN}", params={"since": "hôm qua", "until": "2024-13", "type": "<x>"}
    )
    assert r.status_code == 200 and "3 / 3 lượt" in r.text


@pytest.mark.asyncio
async def test_icd10_names_reach_the_page_through_the_configured_list(client, store):
    hoa.load_and_link(store, NOW)
    page = (await client.get(f"http://test/ui/patient/{hoa.MAIN}")).text
    assert "Bệnh thận mạn giai đoạn 3" in page and "Tăng huyết áp vô căn (nguyên phát)" in page


@pytest.mark.asyncio
async def test_print_view_is_one_self_contained_page_with_the_summary(client, store):
    hoa.load_and_link(store, NOW)
    r = await client.get(f"http://test/ui/patient/{hoa.MAIN}", params={"print": "1"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert "@page { size: A4" in r.text and "Penicillin" in r.text and "Insulin glargine" in r.text
    assert not re.search(r"<(script|link|img)\b", r.text)

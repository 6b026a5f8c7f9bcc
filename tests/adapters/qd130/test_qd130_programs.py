"""The QĐ130 tables that were archived only: XML6 (HIV care), XML9 (birth certificate), XML10 (pregnancy
leave), XML12 (medical assessment), XML15 (tuberculosis treatment) become FHIR (issue 16)."""

from __future__ import annotations

import base64
from pathlib import Path

from adapters.qd130.plugin import Qd130Adapter
from adapters.synth.envelope import build_envelope, read_files
from fhir_server.bindings import check_required_bindings
from fhir_server.validation import validate

SAMPLES = Path("/work/shared/standards/samples")
if not SAMPLES.exists():  # CI clones shared/ beside the repo
    SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "standards" / "samples"
AD = Qd130Adapter()
MA_LK = "79999_2024_03_BN000123_KB01"
SNOMED = "http://snomed.info/sct"

XML6 = f"""<CHI_TIEU_HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS><DSACH_HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS>
<HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS>
<MA_LK>{MA_LK}</MA_LK><NGAYKD_HIV>20190612</NGAYKD_HIV><NOI_LAY_MAU_XN>Phòng khám ngoại trú quận 3</NOI_LAY_MAU_XN>
<NOI_XN_KD>79012</NOI_XN_KD><NOI_BDDT_ARV>79012</NOI_BDDT_ARV><BDDT_ARV>20190620</BDDT_ARV>
<MA_PHAC_DO_DIEU_TRI_BD>TDF+3TC+EFV</MA_PHAC_DO_DIEU_TRI_BD><MA_BAC_PHAC_DO_BD>1</MA_BAC_PHAC_DO_BD>
<MA_LYDO_DTRI>1</MA_LYDO_DTRI><SANG_LOC_LAO>2</SANG_LOC_LAO>
<MA_LYDO_XNTL_VR>1</MA_LYDO_XNTL_VR><NGAY_XN_TLVR>20240301</NGAY_XN_TLVR><KQ_XNTL_VR>&lt;20</KQ_XNTL_VR>
<NGAY_KQ_XN_TLVR>20240308</NGAY_KQ_XN_TLVR><MA_LOAI_BN>2</MA_LOAI_BN><GIAI_DOAN_LAM_SANG>1</GIAI_DOAN_LAM_SANG>
<NHOM_DOI_TUONG>5</NHOM_DOI_TUONG><MA_TINH_TRANG_DK>1</MA_TINH_TRANG_DK>
<NGAY_BAT_DAU_DT_CTX>20190620</NGAY_BAT_DAU_DT_CTX>
<MA_PHAC_DO_DIEU_TRI>TDF+3TC+DTG</MA_PHAC_DO_DIEU_TRI><MA_BAC_PHAC_DO>1</MA_BAC_PHAC_DO>
<SO_NGAY_CAP_THUOC_ARV>90</SO_NGAY_CAP_THUOC_ARV><NGAY_CHUYEN_PHAC_DO>20210115</NGAY_CHUYEN_PHAC_DO>
<LY_DO_CHUYEN_PHAC_DO>Chuyển sang phác đồ có DTG theo hướng dẫn mới</LY_DO_CHUYEN_PHAC_DO>
<MA_CSKCB>79999</MA_CSKCB>
</HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS>
</DSACH_HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS></CHI_TIEU_HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS>"""

XML15 = f"""<CHI_TIEU_DIEUTRI_BENHLAO><DSACH_CHITIET_DIEUTRI_BENHLAO><CHITIET_DIEUTRI_BENHLAO>
<MA_LK>{MA_LK}</MA_LK><STT>1</STT><MA_BN>BN000123</MA_BN><HO_TEN>NGUYỄN VĂN AN</HO_TEN>
<PHANLOAI_LAO_VITRI>1</PHANLOAI_LAO_VITRI><PHANLOAI_LAO_TS>1</PHANLOAI_LAO_TS><PHANLOAI_LAO_HIV>1</PHANLOAI_LAO_HIV>
<PHANLOAI_LAO_VK>1</PHANLOAI_LAO_VK><LOAI_DTRI_LAO>2</LOAI_DTRI_LAO><NGAYBD_DTRI_LAO>20240110</NGAYBD_DTRI_LAO>
<PHACDO_DTRI_LAO>1</PHACDO_DTRI_LAO><NGAYKT_DTRI_LAO>20240710</NGAYKT_DTRI_LAO><KET_QUA_DTRI_LAO>1</KET_QUA_DTRI_LAO>
<MA_CSKCB>79999</MA_CSKCB><NGAYKD_HIV>20190612</NGAYKD_HIV><BDDT_ARV>20190620</BDDT_ARV>
<NGAY_BAT_DAU_DT_CTX>20190620</NGAY_BAT_DAU_DT_CTX>
</CHITIET_DIEUTRI_BENHLAO></DSACH_CHITIET_DIEUTRI_BENHLAO></CHI_TIEU_DIEUTRI_BENHLAO>"""

XML9 = f"""<CHI_TIEU_DU_LIEU_GIAY_CHUNG_SINH><DSACH_GIAYCHUNGSINH><DU_LIEU_GIAY_CHUNG_SINH>
<MA_LK>{MA_LK}</MA_LK><MA_BHXH_NND>7912345678</MA_BHXH_NND><HO_TEN_NND>TRẦN THỊ HOA</HO_TEN_NND>
<NGAYSINH_NND>199503200000</NGAYSINH_NND><MA_DANTOC_NND>01</MA_DANTOC_NND><SO_CCCD_NND>079195012345</SO_CCCD_NND>
<NGAYCAP_CCCD_NND>20210510</NGAYCAP_CCCD_NND><NOICAP_CCCD_NND>Cục Cảnh sát QLHC về TTXH</NOICAP_CCCD_NND>
<NOI_CU_TRU_NND>12 Nguyễn Trãi, Phường Bến Thành, TP Hồ Chí Minh</NOI_CU_TRU_NND>
<HO_TEN_CHA>NGUYỄN VĂN BÌNH</HO_TEN_CHA><MA_THE_TAM>TE1797912345678</MA_THE_TAM>
<HO_TEN_CON>NGUYỄN BẢO AN</HO_TEN_CON><GIOI_TINH_CON>1</GIOI_TINH_CON><SO_CON>1</SO_CON><LAN_SINH>2</LAN_SINH>
<SO_CON_SONG>2</SO_CON_SONG><CAN_NANG_CON>3200</CAN_NANG_CON><NGAY_SINH_CON>202403150830</NGAY_SINH_CON>
<NOI_SINH_CON>Bệnh viện Từ Dũ</NOI_SINH_CON><TINH_TRANG_CON>Khỏe mạnh, khóc ngay</TINH_TRANG_CON>
<SINHCON_PHAUTHUAT>1</SINHCON_PHAUTHUAT><SINHCON_DUOI32TUAN>0</SINHCON_DUOI32TUAN>
<NGUOI_DO_DE>BS. LÊ THỊ MAI</NGUOI_DO_DE><NGUOI_GHI_PHIEU>NHS. PHẠM THU HÀ</NGUOI_GHI_PHIEU>
<NGAY_CT>20240316</NGAY_CT><SO>123</SO><QUYEN_SO>05</QUYEN_SO>
</DU_LIEU_GIAY_CHUNG_SINH></DSACH_GIAYCHUNGSINH></CHI_TIEU_DU_LIEU_GIAY_CHUNG_SINH>"""

XML10 = f"""<CHI_TIEU_DU_LIEU_GIAY_NGHI_DUONG_THAI><MA_LK>{MA_LK}</MA_LK><SO_SERI>AB123</SO_SERI><SO_CT>45</SO_CT>
<SO_NGAY>30</SO_NGAY><DON_VI>Công ty May Việt Tiến</DON_VI><CHAN_DOAN_RV>Dọa sẩy thai</CHAN_DOAN_RV>
<TU_NGAY>20240316</TU_NGAY><DEN_NGAY>20240414</DEN_NGAY><TEN_BS>LÊ THỊ MAI</TEN_BS><MA_BS>7900012345</MA_BS>
<NGAY_CT>20240315</NGAY_CT></CHI_TIEU_DU_LIEU_GIAY_NGHI_DUONG_THAI>"""

XML12 = f"""<CHI_TIEU_DU_LIEU_GIAM_DINH_YKHOA><MA_LK>{MA_LK}</MA_LK><NGUOI_CHU_TRI>PGS. HOÀNG VĂN MINH</NGUOI_CHU_TRI>
<CHUC_VU>Chủ tịch Hội đồng</CHUC_VU><NGAY_HOP>20240320</NGAY_HOP><HO_TEN>NGUYỄN VĂN AN</HO_TEN>
<KHAM_GIAM_DINH>1</KHAM_GIAM_DINH><SO_BIEN_BAN>GĐ-2024-0071</SO_BIEN_BAN><TYLE_TTCT_MOI>41</TYLE_TTCT_MOI>
<TONG_TYLE_TTCT>41</TONG_TYLE_TTCT><KET_QUA_KHAM>Cứng khớp gối phải sau chấn thương</KET_QUA_KHAM>
<DANG_KHUYETTAT>2</DANG_KHUYETTAT><MUC_DO_KHUYETTAT>2</MUC_DO_KHUYETTAT><DE_NGHI>Hưởng trợ cấp một lần</DE_NGHI>
<NGAY_CHUNG_TU>20240321</NGAY_CHUNG_TU></CHI_TIEU_DU_LIEU_GIAM_DINH_YKHOA>"""


def _bundle(*tables: tuple[str, str]) -> tuple[dict, list]:
    files = read_files((SAMPLES / "qd130-outpatient.xml").read_bytes())[0]
    files += [(loai, xml.encode("utf-8")) for loai, xml in tables]
    parsed = AD.parse(build_envelope("79999", [files]))
    (rec,) = parsed.records
    mapped = AD.to_fhir(rec)
    assert mapped.errors == [], mapped.errors
    return mapped.bundle, mapped.warnings


def _of(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _coded(bundle: dict, rtype: str, code: str) -> list[dict]:
    """Resources of a type whose code has this coding."""
    return [r for r in _of(bundle, rtype) if code in {c["code"] for c in r["code"].get("coding", [])}]


def _ref(res: dict) -> str:
    return f"{res['resourceType']}/{res['id']}"


def test_hiv_care_becomes_condition_episode_tests_and_arv_plan():
    bundle, warnings = _bundle(("XML6", XML6))
    assert not any("not mapped" in w.reason for w in warnings)
    (hiv,) = _coded(bundle, "Condition", "86406008")
    assert hiv["code"]["coding"][0]["system"] == SNOMED and hiv["code"]["text"] == "Nhiễm HIV"
    assert hiv["extension"][0]["valueDateTime"] == "2019-06-12"  # confirmed (assertedDate)
    assert hiv["stage"][0]["summary"]["text"] == "Giai đoạn lâm sàng 1"
    (episode,) = _of(bundle, "EpisodeOfCare")
    assert episode["diagnosis"][0]["condition"]["reference"] == _ref(hiv)
    (vl,) = _coded(bundle, "Observation", "20447-9")
    assert vl["valueQuantity"]["comparator"] == "<" and vl["valueQuantity"]["value"] == 20
    assert vl["valueQuantity"]["code"] == "{copies}/mL" and vl["effectiveDateTime"] == "2024-03-01"
    (arv,) = [p for p in _of(bundle, "CarePlan") if p["title"] == "Điều trị ARV"]
    assert arv["period"] == {"start": "2019-06-20"} and arv["addresses"] == [{"reference": _ref(hiv)}]
    first, current = arv["activity"][0]["detail"], arv["activity"][1]["detail"]
    assert first["code"]["coding"][0]["code"] == "TDF+3TC+EFV" and first["status"] == "completed"
    assert first["scheduledPeriod"] == {"start": "2019-06-20", "end": "2021-01-15"}
    assert current["code"]["coding"][0]["code"] == "TDF+3TC+DTG" and current["status"] == "in-progress"
    assert current["quantity"] == {
        "value": 90,
        "unit": "ngày",
        "system": "http://unitsofmeasure.org",
        "code": "d",
    }
    assert "DTG" in current["reasonCode"][0]["text"]
    (ctx_prophylaxis,) = _of(bundle, "MedicationStatement")
    assert ctx_prophylaxis["medicationCodeableConcept"]["coding"][0]["code"] == "J01EE01"
    assert ctx_prophylaxis["effectivePeriod"] == {"start": "2019-06-20"}


def test_tb_treatment_becomes_a_classified_condition_and_a_completed_plan():
    bundle, _ = _bundle(("XML15", XML15))
    (tb,) = _coded(bundle, "Condition", "56717001")
    assert tb["code"]["text"] == "Lao phổi"
    assert [s["summary"]["coding"][0]["display"] for s in tb["stage"]] == [
        "Lao phổi",
        "Mới",
        "HIV dương tính",
        "Có bằng chứng vi khuẩn học",
    ]
    (plan,) = [p for p in _of(bundle, "CarePlan") if p["title"] == "Điều trị lao"]
    assert plan["status"] == "completed" and plan["period"] == {"start": "2024-01-10", "end": "2024-07-10"}
    assert plan["addresses"] == [{"reference": _ref(tb)}]
    assert plan["category"][1]["coding"][0]["display"] == "Điều trị lao nhạy cảm thuốc"
    assert plan["activity"][0]["outcomeCodeableConcept"][0]["coding"][0]["code"] == "1"


def test_tb_table_alone_carries_the_hiv_dates_of_a_co_infected_patient():
    bundle, _ = _bundle(("XML15", XML15))
    (hiv,) = _coded(bundle, "Condition", "86406008")
    assert hiv["extension"][0]["valueDateTime"] == "2019-06-12"
    assert any(p["title"] == "Điều trị ARV" for p in _of(bundle, "CarePlan"))
    assert len(_of(bundle, "MedicationStatement")) == 1


def test_hiv_and_tb_tables_together_make_one_hiv_condition():
    bundle, _ = _bundle(("XML6", XML6), ("XML15", XML15))
    assert len(_coded(bundle, "Condition", "86406008")) == 1 and len(_of(bundle, "MedicationStatement")) == 1


def test_birth_certificate_becomes_newborn_parents_weight_and_paper():
    bundle, _ = _bundle(("XML9", XML9))
    mother_patient = _of(bundle, "Patient")[0]
    newborn = next(p for p in _of(bundle, "Patient") if p is not mother_patient)
    assert newborn["name"][0]["text"] == "NGUYỄN BẢO AN" and newborn["gender"] == "male"
    assert newborn["birthDate"] == "2024-03-15"
    assert newborn["_birthDate"]["extension"][0]["valueDateTime"] == "2024-03-15T08:30:00+07:00"
    assert newborn["multipleBirthBoolean"] is False
    assert newborn["identifier"][0]["value"] == "TE1797912345678"
    caregiver, father = _of(bundle, "RelatedPerson")
    assert caregiver["patient"]["reference"] == _ref(newborn)
    assert caregiver["name"][0]["text"] == "TRẦN THỊ HOA" and caregiver["birthDate"] == "1995-03-20"
    cccd = next(i for i in caregiver["identifier"] if i["value"] == "079195012345")
    assert cccd["period"] == {"start": "2021-05-10"} and cccd["assigner"]["display"].startswith(
        "Cục Cảnh sát"
    )
    assert father["relationship"][0]["coding"][0]["code"] == "FTH"
    (weight,) = _coded(bundle, "Observation", "8339-4")
    assert weight["valueQuantity"] == {
        "value": 3200,
        "unit": "g",
        "system": "http://unitsofmeasure.org",
        "code": "g",
    }
    assert weight["subject"]["reference"] == _ref(newborn)
    paper = next(c for c in _of(bundle, "Composition") if c["title"] == "Giấy chứng sinh")
    assert paper["subject"]["reference"] == _ref(newborn) and paper["identifier"]["value"] == "123"
    delivery = next(s for s in paper["section"] if s["title"] == "Thông tin cuộc đẻ")["text"]["div"]
    assert "Sinh con phải phẫu thuật: Có" in delivery and "Sinh con dưới 32 tuần: Không" in delivery
    assert "Lần sinh thứ: 2" in delivery and "Người đỡ đẻ: BS. LÊ THỊ MAI" in delivery


def test_pregnancy_leave_is_a_document_with_its_original_xml():
    bundle, _ = _bundle(("XML10", XML10))
    (doc,) = _of(bundle, "DocumentReference")
    assert doc["type"]["text"] == "Giấy nghỉ dưỡng thai"
    assert doc["description"] == "Nghỉ dưỡng thai 30 ngày; Chẩn đoán: Dọa sẩy thai"
    assert doc["context"]["period"] == {"start": "2024-03-16", "end": "2024-04-14"}
    assert "Công ty May Việt Tiến" in base64.b64decode(doc["content"][0]["attachment"]["data"]).decode()
    assert {i["value"] for i in doc["identifier"]} == {"AB123", "45"}


def test_medical_assessment_becomes_an_impression_with_rates_and_the_minutes():
    bundle, _ = _bundle(("XML12", XML12))
    ci = next(c for c in _of(bundle, "ClinicalImpression") if c["code"]["text"] == "Giám định y khoa")
    assert ci["date"] == "2024-03-20" and ci["summary"] == "Cứng khớp gối phải sau chấn thương"
    assert ci["assessor"]["display"] == "PGS. HOÀNG VĂN MINH (Chủ tịch Hội đồng)"
    found = {f["itemReference"]["reference"] for f in ci["finding"]}
    rates = [o for o in _of(bundle, "Observation") if _ref(o) in found and "valueQuantity" in o]
    assert sorted(o["valueQuantity"]["value"] for o in rates) == [41, 41]
    (doc,) = _of(bundle, "DocumentReference")
    assert doc["identifier"][0]["value"] == "GĐ-2024-0071" and ci["supportingInfo"] == [
        {"reference": _ref(doc)}
    ]


def test_every_new_resource_passes_r4_models_and_required_bindings():
    bundle, _ = _bundle(("XML6", XML6), ("XML9", XML9), ("XML10", XML10), ("XML12", XML12), ("XML15", XML15))
    for entry in bundle["entry"]:
        res = entry["resource"]
        validate(res)
        assert check_required_bindings(res) == [], res["resourceType"]


def test_a_malformed_date_in_a_new_table_is_a_located_error():
    bad = XML6.replace("<NGAYKD_HIV>20190612</NGAYKD_HIV>", "<NGAYKD_HIV>20190231</NGAYKD_HIV>")
    files = read_files((SAMPLES / "qd130-outpatient.xml").read_bytes())[0] + [("XML6", bad.encode())]
    (rec,) = AD.parse(build_envelope("79999", [files])).records
    assert any(e.location.endswith("NGAYKD_HIV") for e in rec.data.errors)

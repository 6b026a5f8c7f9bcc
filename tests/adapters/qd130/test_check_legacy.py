"""QĐ 4210 files (digest §5b): flagged as the old layout, checked on what both layouts share."""

from __future__ import annotations

from adapters.qd130.check import check_bytes
from adapters.qd130.check_report import NOT_CHECKED, exit_code
from adapters.synth.envelope import build_envelope

XML1_4210 = """<?xml version="1.0" encoding="utf-8"?>
<TONG_HOP>
  <MA_LK>79001_2023_10_BN000789</MA_LK><STT>1</STT><MA_BN>BN000789</MA_BN>
  <HO_TEN><![CDATA[LÊ THỊ CÚC]]></HO_TEN><NGAY_SINH>19700101</NGAY_SINH><GIOI_TINH>2</GIOI_TINH>
  <DIA_CHI><![CDATA[Số 5 đường Nguyễn Trãi, Quận 5, Thành phố Hồ Chí Minh]]></DIA_CHI>
  <MA_THE>{card}</MA_THE><MA_DKBD>79001</MA_DKBD><GT_THE_TU>20230101</GT_THE_TU><GT_THE_DEN>20231231</GT_THE_DEN>
  <MIEN_CUNG_CT></MIEN_CUNG_CT><TEN_BENH><![CDATA[Tăng huyết áp vô căn]]></TEN_BENH>
  <MA_BENH>{dx}</MA_BENH><MA_BENHKHAC>E11.9</MA_BENHKHAC><MA_LYDO_VVIEN>1</MA_LYDO_VVIEN>
  <MA_NOI_CHUYEN></MA_NOI_CHUYEN><MA_TAI_NAN></MA_TAI_NAN>
  <NGAY_VAO>202310050800</NGAY_VAO><NGAY_RA>{out}</NGAY_RA><SO_NGAY_DTRI>1</SO_NGAY_DTRI>
  <KET_QUA_DTRI>2</KET_QUA_DTRI><TINH_TRANG_RV>1</TINH_TRANG_RV><NGAY_TTOAN>202310051000</NGAY_TTOAN>
  <T_THUOC>24000</T_THUOC><T_VTYT>0</T_VTYT><T_TONGCHI>66100</T_TONGCHI><T_BNTT>0</T_BNTT>
  <T_BNCCT>3305</T_BNCCT><T_BHTT>62795</T_BHTT><T_NGUONKHAC>0</T_NGUONKHAC><T_NGOAIDS>0</T_NGOAIDS>
  <NAM_QT>2023</NAM_QT><THANG_QT>10</THANG_QT><MA_LOAI_KCB>{kcb}</MA_LOAI_KCB><MA_KHOA>K01</MA_KHOA>
  <MA_CSKCB>79001</MA_CSKCB><MA_KHUVUC></MA_KHUVUC><MA_PTTT_QT></MA_PTTT_QT><CAN_NANG>55</CAN_NANG>
</TONG_HOP>"""

# QĐ 4210 files use the list wrapper as their root (no CHITIEU_ element)
XML2_4210 = """<?xml version="1.0" encoding="utf-8"?>
<DSACH_CHI_TIET_THUOC><CHI_TIET_THUOC>
  <MA_LK>79001_2023_10_BN000789</MA_LK><STT>1</STT><MA_THUOC>40.395</MA_THUOC><MA_NHOM>4</MA_NHOM>
  <TEN_THUOC><![CDATA[Amlodipin 5mg]]></TEN_THUOC><DON_VI_TINH>Viên</DON_VI_TINH><HAM_LUONG>5mg</HAM_LUONG>
  <DUONG_DUNG>1.01</DUONG_DUNG><LIEU_DUNG><![CDATA[1 viên/lần * 1 lần/ngày * 30 ngày]]></LIEU_DUNG>
  <SO_DANG_KY>VD-12345-20</SO_DANG_KY><TT_THAU>0000/QĐ-SYT;G1;N4;2023</TT_THAU><PHAM_VI>1</PHAM_VI>
  <TYLE_TT>100</TYLE_TT><SO_LUONG>30</SO_LUONG><DON_GIA>800</DON_GIA><THANH_TIEN>24000</THANH_TIEN>
  <MUC_HUONG>95</MUC_HUONG><T_NGUONKHAC>0</T_NGUONKHAC><T_BNTT>0</T_BNTT><T_BHTT>22800</T_BHTT>
  <T_BNCCT>1200</T_BNCCT><T_NGOAIDS>0</T_NGOAIDS><MA_KHOA>K01</MA_KHOA><MA_BAC_SI>000123/HCM-CCHN</MA_BAC_SI>
  <MA_BENH>I10</MA_BENH><NGAY_YL>202310050900</NGAY_YL><MA_PTTT>1</MA_PTTT>
</CHI_TIET_THUOC></DSACH_CHI_TIET_THUOC>"""

XML3_4210 = """<?xml version="1.0" encoding="utf-8"?>
<DSACH_CHI_TIET_DVKT><CHI_TIET_DVKT>
  <MA_LK>79001_2023_10_BN000789</MA_LK><STT>1</STT><MA_DICH_VU>02.1896</MA_DICH_VU><MA_VAT_TU></MA_VAT_TU>
  <MA_NHOM>13</MA_NHOM><GOI_VTYT></GOI_VTYT><TEN_VAT_TU></TEN_VAT_TU><TEN_DICH_VU>Khám Nội</TEN_DICH_VU>
  <DON_VI_TINH>Lần</DON_VI_TINH><PHAM_VI>1</PHAM_VI><SO_LUONG>1</SO_LUONG><DON_GIA>42100</DON_GIA>
  <TT_THAU></TT_THAU><TYLE_TT>100</TYLE_TT><THANH_TIEN>42100</THANH_TIEN><T_TRANTT></T_TRANTT>
  <MUC_HUONG>95</MUC_HUONG><T_NGUONKHAC>0</T_NGUONKHAC><T_BNTT>0</T_BNTT><T_BHTT>39995</T_BHTT>
  <T_BNCCT>2105</T_BNCCT><T_NGOAIDS>0</T_NGOAIDS><MA_KHOA>K01</MA_KHOA><MA_GIUONG></MA_GIUONG>
  <MA_BAC_SI>000123/HCM-CCHN</MA_BAC_SI><MA_BENH>I10</MA_BENH><NGAY_YL>202310050805</NGAY_YL>
  <NGAY_KQ>202310050830</NGAY_KQ><MA_PTTT>1</MA_PTTT>
</CHI_TIET_DVKT></DSACH_CHI_TIET_DVKT>"""


def _file(card="HT3797900001234", dx="I10", out="202310050930", kcb="1") -> bytes:
    xml1 = XML1_4210.format(card=card, dx=dx, out=out, kcb=kcb).encode()
    return build_envelope(
        "79001", [[("XML1", xml1), ("XML2", XML2_4210.encode()), ("XML3", XML3_4210.encode())]]
    )


def test_clean_4210_file_only_gets_the_old_layout_warning():
    report = check_bytes(_file(), "4210.xml")
    assert [(f.rule_id, f.table, f.severity) for f in report.findings] == [("QD130-FILE-003", "XML1", "W")]
    assert "QĐ 4210" in report.findings[0].message_vi
    assert exit_code([report]) == 0
    assert exit_code([report], strict=True) == 1


def test_4210_record_is_not_asked_for_fields_the_old_layout_never_had():
    report = check_bytes(_file(), "4210.xml")
    rules = {f.rule_id for f in report.findings}
    # MA_QUOCTICH, MA_DANTOC, MA_HSBA... (XML1) and THANH_TIEN_BV, T_NGUONKHAC_NSNN... (XML2/3) are QĐ 130 fields
    assert not rules & {"QD130-XML1-001", "QD130-XML2-001", "QD130-XML3-001"}
    # TINH_TRANG_RV, T_TONGCHI, THANH_TIEN, TYLE_TT, T_NGOAIDS are known 4210 elements, not "unknown"
    assert "QD130-ALL-005" not in rules


def test_rules_with_qd130_only_meaning_are_reported_as_not_applied_to_4210_records():
    status = check_bytes(_file(), "4210.xml").rules["QD130-XML1-015"]  # SO_NGAY_DTRI per MA_LOAI_KCB
    assert status.status == NOT_CHECKED
    assert "QĐ 4210" in status.reason_vi


def test_4210_one_digit_visit_type_is_read_as_its_two_digit_code():
    assert "QD130-XML1-022" not in {f.rule_id for f in check_bytes(_file(kcb="1")).findings}
    bad = check_bytes(_file(kcb="12"))
    assert [f.field for f in bad.findings if f.rule_id == "QD130-XML1-022"] == ["MA_LOAI_KCB"]


def test_real_errors_in_a_4210_file_are_still_found_under_the_qd130_names():
    report = check_bytes(_file(card="HT37979000", dx="I10;E11", out="202310040930"), "4210-bad.xml")
    got = {(f.rule_id, f.field, f.severity) for f in report.findings}
    assert got == {
        ("QD130-FILE-003", "", "W"),
        ("QD130-XML1-007", "MA_THE_BHYT", "W"),  # card too short (MA_THE read as MA_THE_BHYT)
        ("QD130-XML1-019", "MA_BENH_CHINH", "E"),  # two codes where one principal diagnosis is expected
        ("QD130-XML1-013", "NGAY_RA", "E"),  # discharged the day before arrival
    }
    assert exit_code([report]) == 2


def test_bare_4210_summary_table_without_envelope_is_checked_too():
    bare = XML1_4210.format(card="HT3797900001234", dx="I10", out="202310050930", kcb="1").encode()
    report = check_bytes(bare, "TONG_HOP.xml")
    assert report.records == 1
    # a bare XML1 says nothing about XML2/XML3, so its totals are not compared with absent rows
    assert [f.rule_id for f in report.findings] == ["QD130-FILE-003"]

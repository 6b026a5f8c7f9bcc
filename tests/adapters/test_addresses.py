"""Addresses keep the codes a source sent and gain unit names and both eras' codes (before/after 1 Jul 2025);
patients are found by the old or the new province, by name (with or without accents) or by code."""

from __future__ import annotations

import datetime as dt

import pytest

from adapters.address import NEW_EXT, OLD_EXT, enrich
from adapters.hl7v2.datatypes import Context, address
from adapters.hl7v2.er7 import Encoding
from mappings import profile_set

HL7VN = profile_set("hl7vn")["extensions"]
EHEALTH = profile_set("ehealth")["extensions"]
VN_PROVINCE = HL7VN["province"]
VN_WARD = HL7VN["ward"]


def codes(addr: dict) -> dict[str, str]:
    """Extension url -> code of an Address's simple extensions."""
    return {x["url"]: x["valueCoding"]["code"] for x in addr.get("extension", []) if "valueCoding" in x}


def test_old_codes_of_a_2024_visit_gain_names_and_the_new_province_and_ward():
    # Phường Tương Bình Hiệp, Thành phố Thủ Dầu Một, Tỉnh Bình Dương -> Phường Chánh Hiệp, TP Hồ Chí Minh
    addr = enrich({"text": "Số 5 Yersin"}, HL7VN, "74", "718", "25771", on=dt.date(2024, 5, 7))
    assert addr["text"] == "Số 5 Yersin"  # what the source sent stays
    assert (addr["city"], addr["district"], addr["state"]) == (
        "Phường Tương Bình Hiệp",
        "Thành phố Thủ Dầu Một",
        "Tỉnh Bình Dương",
    )
    assert codes(addr) == {
        VN_PROVINCE: "79",
        VN_WARD: "25771",
        OLD_EXT["province"]: "74",
        OLD_EXT["district"]: "718",
        OLD_EXT["ward"]: "25771",
    }
    new_ward = next(x for x in addr["extension"] if x["url"] == VN_WARD)
    assert new_ward["valueCoding"]["display"] == "Phường Chánh Hiệp"


def test_new_codes_sent_after_the_reform_stay_new_and_carry_no_old_units():
    addr = enrich({}, HL7VN, "79", None, "25771", on=dt.date(2025, 9, 1))
    assert addr["state"] == "Thành phố Hồ Chí Minh"
    assert addr["city"] == "Phường Chánh Hiệp"
    assert "district" not in addr
    assert addr["text"] == "Phường Chánh Hiệp, Thành phố Hồ Chí Minh"
    assert codes(addr) == {VN_PROVINCE: "79", VN_WARD: "25771"}


def test_a_split_old_commune_gets_only_the_new_province():
    addr = enrich({}, HL7VN, "01", "001", "00007", on=dt.date(2024, 1, 2))  # Phường Cống Vị, Ba Đình
    assert addr["city"] == "Phường Cống Vị"
    got = codes(addr)
    assert got[VN_PROVINCE] == "01"
    assert VN_WARD not in got
    assert got[OLD_EXT["ward"]] == "00007"


def test_an_unknown_code_is_kept_as_sent_without_a_name():
    addr = enrich({"text": "Ấp 3"}, HL7VN, "79", "760", "99999", on=dt.date(2024, 1, 2))
    assert codes(addr)[OLD_EXT["ward"]] == "99999"
    assert addr["state"] == "Thành phố Hồ Chí Minh"
    assert "city" not in addr


def test_the_ministry_guide_keeps_old_codes_in_its_administrative_address_extension():
    addr = enrich({}, EHEALTH, "06", "058", None, on=dt.date(2024, 3, 1))  # Bắc Kạn -> Thái Nguyên
    adm = next(x for x in addr["extension"] if x["url"] == EHEALTH["administrative_address"])
    assert {s["url"]: s["valueCodeableConcept"]["coding"][0]["code"] for s in adm["extension"]} == {
        "state": "06",
        "district": "058",
    }
    assert codes(addr) == {NEW_EXT["province"]: "19"}
    assert addr["state"] == "Tỉnh Bắc Kạn"


def test_an_hl7v2_address_with_unit_names_gains_both_eras_codes():
    ctx = Context(facility="79001", encoding=Encoding())
    # XAD: street ^ other ^ city(ward) ^ state ^ zip ^ country ^ type ^ ^ county/district
    comps = ["12 Lê Lợi", "", "Phường Bến Nghé", "TP. Hồ Chí Minh", "", "VN", "H", "", "Quận 1"]
    addr = address(comps, ctx)
    assert addr is not None
    assert addr["state"] == "TP. Hồ Chí Minh"  # the name as sent
    assert codes(addr) == {
        VN_PROVINCE: "79",
        VN_WARD: "26740",
        OLD_EXT["province"]: "79",
        OLD_EXT["district"]: "760",
        OLD_EXT["ward"]: "26740",
    }


def _patient(family: str, given: str, addr: dict) -> dict:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given], "text": f"{family} {given}"}],
        "address": [addr],
    }


@pytest.fixture
async def binh_duong_and_ha_noi(client):
    """Trần Thị Bích lives in old Bình Dương (now TP Hồ Chí Minh); Lê Văn Hùng in Hà Nội."""
    bd = enrich({"text": "Số 5 Yersin"}, HL7VN, "74", "718", "25771", on=dt.date(2024, 5, 7))
    hn = enrich({"text": "Số 1 Hàng Rươi"}, HL7VN, "01", "002", "00037", on=dt.date(2024, 5, 7))
    for body in (_patient("Trần", "Thị Bích", bd), _patient("Lê", "Văn Hùng", hn)):
        r = await client.post("/Patient", json=body)
        assert r.status_code == 201, r.text
    return client


async def _families(client, query: str) -> set[str]:
    r = await client.get(f"/Patient?{query}")
    assert r.status_code == 200, r.text
    return {e["resource"]["name"][0]["family"] for e in r.json().get("entry", [])}


@pytest.mark.parametrize(
    "query",
    [
        "address-state=Bình Dương",  # old province, bare name
        "address-state=binh duong",  # without accents
        "address-state=Tỉnh Bình Dương",
        "address-state=74",  # old code
        "address-state=Hồ Chí Minh",  # new province
        "address-state=79",  # new code
        "address=Chánh Hiệp",  # new ward name
        "address=Thủ Dầu Một",  # old district name
        "address=binh duong",
    ],
)
async def test_a_patient_is_found_by_the_old_or_the_new_province(binh_duong_and_ha_noi, query):
    assert await _families(binh_duong_and_ha_noi, query) == {"Trần"}


async def test_another_province_does_not_find_her(binh_duong_and_ha_noi):
    assert await _families(binh_duong_and_ha_noi, "address-state=Hà Nội") == {"Lê"}
    assert await _families(binh_duong_and_ha_noi, "address-state=Đà Nẵng") == set()

"""The language layer: choosing vi/en, rendering messages late, and catalogs that are complete and compiled."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fhir_server.errors import FhirError
from fhir_server.i18n import (
    DOMAIN,
    Texts,
    accept_language,
    current_lang,
    from_json,
    lang_from_locale,
    msg,
    set_lang,
    use_lang,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "lang"),
    [
        ({"LANG": "vi_VN.UTF-8"}, "vi"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LANG": "fr_FR.UTF-8"}, "en"),
        ({}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "vi_VN.UTF-8"}, "vi"),  # LC_ALL wins, as in POSIX
        ({"LANG": "vi_VN.UTF-8", "LIENTHONG_LANG": "en"}, "en"),  # the explicit setting wins over the locale
    ],
)
def test_process_language_follows_lienthong_lang_then_the_posix_locale(env, lang):
    assert lang_from_locale(env) == lang


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "en"),
        ("vi", "vi"),
        ("vi-VN,vi;q=0.9,en-US;q=0.8,en;q=0.7", "vi"),
        ("en-US,en;q=0.9,vi;q=0.8", "en"),
        ("fr-FR, vi;q=0.5", "vi"),
        ("vi;q=0, en", "en"),
        ("*", "en"),
    ],
)
def test_accept_language_picks_the_best_supported_language(header, lang):
    assert accept_language(header) == lang


def test_a_message_renders_in_english_by_default_and_in_vietnamese_on_request():
    m = msg("{ref} not found", ref="Patient/bn-001")
    assert str(m) == "Patient/bn-001 not found"
    assert m.render("vi") == "Không tìm thấy Patient/bn-001"
    with use_lang("vi"):
        assert m.render() == "Không tìm thấy Patient/bn-001"
    assert current_lang() == "en"


def test_set_lang_changes_the_process_language_and_falls_back_to_english():
    try:
        assert set_lang("vi_VN.UTF-8") == "vi"
        assert DOMAIN.gettext("Request body is empty") == "Nội dung yêu cầu trống"
        assert set_lang("klingon") == "en"
    finally:
        set_lang("en")


def test_a_message_survives_json_and_renders_again_in_either_language():
    m = msg("{ref} was deleted", ref="Encounter/ba-0042")
    again = from_json(m.to_json())
    assert again is not None
    assert again.render("vi") == "Encounter/ba-0042 đã bị xoá"
    assert again.render("en") == "Encounter/ba-0042 was deleted"
    both = from_json(Texts({"vi": "Thiếu MA_LK", "en": "MA_LK missing"}).to_json())
    assert both is not None and both.render("vi") == "Thiếu MA_LK"


def test_fhir_error_keeps_english_outcome_and_translates_on_render():
    err = FhirError.not_found(msg("{ref} not found", ref="Patient/x"))
    assert err.outcome["issue"][0]["diagnostics"] == "Patient/x not found"
    assert err.localized("vi")["issue"][0]["diagnostics"] == "Không tìm thấy Patient/x"
    assert err.localized("en") is err.outcome


def test_plain_string_errors_keep_working_unchanged():
    err = FhirError.bad_request("_count must be an integer, got 'x'", expression="_count")
    assert err.localized("vi") == err.outcome
    assert FhirError.make(409, "conflict", "stale").outcome["issue"][0]["diagnostics"] == "stale"


def test_catalogs_translate_every_message_and_the_shipped_mo_files_are_current():
    spec = importlib.util.spec_from_file_location("i18n_tool", ROOT / "scripts" / "i18n.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.problems() == []

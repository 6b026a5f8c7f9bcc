"""Adapter discovery through entry points, lookup and sniffing; vendor profiles as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters import registry
from adapters.base import Adapter
from adapters.qd130.plugin import Qd130Adapter
from adapters.qd130.vendors import detect_vendor, get_vendor, reload_vendors

SAMPLE = Path("/work/shared/standards/samples/qd130-outpatient.xml")
if not SAMPLE.exists():
    SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "standards" / "samples" / "qd130-outpatient.xml"


def test_qd130_is_discovered_through_entry_points():
    ad = registry.get_adapter("qd130")
    assert isinstance(ad, Qd130Adapter) and isinstance(ad, Adapter)
    assert "qd130" in registry.adapters()


def test_unknown_adapter_names_the_available_ones():
    with pytest.raises(KeyError, match="qd130"):
        registry.get_adapter("no-such-format")


def test_detect_by_sniffing():
    assert registry.detect(SAMPLE.read_bytes()).name == "qd130"
    assert registry.detect(b"\x00\x01 binary junk") is None


def test_broken_plugin_is_reported_not_fatal(monkeypatch):
    class EP:
        name = "broken"

        def load(self):
            raise ImportError("simulated missing dependency")

    real = registry.entry_points
    monkeypatch.setattr(registry, "entry_points", lambda group: list(real(group=group)) + [EP()])
    registry.reset()
    try:
        assert "broken" in registry.broken_adapters()
        assert "qd130" in registry.adapters()
        with pytest.raises(KeyError, match="failed to load"):
            registry.get_adapter("broken")
    finally:
        registry.reset()


def test_shipped_vendor_profiles_load():
    for name in ("standard", "vnpt", "viettel", "vietsens"):
        assert get_vendor(name).name == name
    assert get_vendor("viettel").decimal_separator == ","
    assert detect_vendor(b"<?xml version='1.0'?><!-- VNPT-HIS 5.2 --><GIAMDINHHS/>").name == "vnpt"
    assert detect_vendor(SAMPLE.read_bytes()).name == "standard"


def test_vendor_profile_from_temporary_directory(tmp_path, monkeypatch):
    (tmp_path / "benhvien_x.yaml").write_text(
        "name: benhvien_x\ntitle: HIS của Bệnh viện X\ndecimal_separator: ','\nempty_values: ['', 'KHONG']\n"
        "code_maps:\n  DUONG_DUNG: {UONG: '1.01'}\ndetect:\n  envelope_contains: ['HIS-BVX']\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("LIENTHONG_VENDOR_PATH", str(tmp_path))
    reload_vendors()
    try:
        body = SAMPLE.read_bytes()
        from adapters.synth.envelope import build_envelope, read_files

        files = [
            (
                n,
                b.replace(b"<DON_GIA>1200.5</DON_GIA>", b"<DON_GIA>1200,5</DON_GIA>")
                .replace(b"<DUONG_DUNG>1.01</DUONG_DUNG>", b"<DUONG_DUNG>UONG</DUONG_DUNG>")
                .replace(b"<NHOM_MAU></NHOM_MAU>", b"<NHOM_MAU>KHONG</NHOM_MAU>"),
            )
            for n, b in read_files(body)[0]
        ]
        env = build_envelope("79999", [files]).replace(b"<GIAMDINHHS>", b"<!-- HIS-BVX --><GIAMDINHHS>", 1)
        ad = Qd130Adapter()
        # Standard profile: the comma decimal is an error.
        std = ad.parse(env, {"vendor": "standard"}).records[0]
        assert std.data.errors[0].location == "XML2/CHI_TIET_THUOC[2]/DON_GIA"
        # Detected from the hint (no option), then also selected explicitly by name.
        for opts in ({}, {"vendor": "benhvien_x"}):
            rec = ad.parse(env, opts).records[0]
            assert rec.meta["vendor"] == "benhvien_x"
            mapped = ad.to_fhir(rec, opts)
            assert mapped.errors == []
            mrs = [
                e["resource"]
                for e in mapped.bundle["entry"]
                if e["resource"]["resourceType"] == "MedicationRequest"
            ]
            assert mrs[1]["dosageInstruction"][0]["route"]["coding"][0]["code"] == "1.01"
            obs = [
                e["resource"]
                for e in mapped.bundle["entry"]
                if e["resource"]["resourceType"] == "Observation"
            ]
            assert not [o for o in obs if o["code"].get("coding", [{}])[0].get("code") == "882-1"]
        # Also via the vendor_path option, without the environment variable.
        monkeypatch.delenv("LIENTHONG_VENDOR_PATH")
        reload_vendors()
        assert (
            ad.parse(env, {"vendor": "benhvien_x", "vendor_path": str(tmp_path)}).records[0].data.errors == []
        )
    finally:
        reload_vendors()


def test_unknown_vendor_is_a_clear_error():
    parsed = Qd130Adapter().parse(SAMPLE.read_bytes(), {"vendor": "khong-co"})
    assert (
        parsed.errors[0].location == "options/vendor" and "unknown vendor profile" in parsed.errors[0].reason
    )

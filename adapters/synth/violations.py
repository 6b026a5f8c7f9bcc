"""Break one QĐ130 check rule on purpose in a generated envelope (tests and demos; trusted input only).

`inject(xml, rule_id)` returns the edited envelope and where the checker must report the violation
(table, STT, field). Each recipe changes as little as possible and repairs what it would otherwise
break as a side effect (for example an XML1 total when a row amount moves), so that exactly the
chosen rule fires. A recipe that needs something the visit lacks (an inpatient stay, a referral,
XML14...) raises NotApplicable; callers try the next visit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from lxml import etree

from adapters.qd130.check_rules import load_rules
from adapters.qd130.envelope import tables_config
from adapters.qd130.xmlsafe import parse_xml

from .envelope import build_envelope, read_files


class NotApplicable(Exception):
    """The visit lacks what the recipe needs (e.g. no XML14, not an inpatient stay)."""


@dataclass(frozen=True)
class Injected:
    """An envelope with one rule broken, and where the finding must appear."""

    xml: bytes
    rule_id: str
    table: str
    stt: str
    field: str


class Dossier:
    """One-HOSO envelope decoded into editable inner documents."""

    def __init__(self, xml: bytes) -> None:
        """Decode the envelope (first HOSO only)."""
        root = parse_xml(xml)
        self.envelope_root = root.tag
        self.facility = (root.findtext("THONGTINDONVI/MACSKCB") or "").strip()
        self.created = (root.findtext("THONGTINHOSO/NGAYLAP") or "").strip()
        self.docs: dict[str, etree._Element] = {loai: parse_xml(b) for loai, b in read_files(xml)[0]}
        self.declared: int | None = None
        self.corrupt: set[str] = set()

    # --- reading --------------------------------------------------------------------------------
    def has(self, loai: str) -> bool:
        """True when the table is in the HOSO."""
        return loai in self.docs

    def records(self, loai: str) -> list[etree._Element]:
        """Record elements of a table (NotApplicable when the table is absent)."""
        if loai not in self.docs:
            raise NotApplicable(f"no {loai}")
        tag = tables_config()["tables"][loai]["record"]
        root = self.docs[loai]
        return [root] if root.tag == tag else list(root.iter(tag))

    def get(self, loai: str, i: int, fld: str) -> str | None:
        """Text of a field (None when absent or empty)."""
        el = self.records(loai)[i].find(fld)
        text = (el.text or "").strip() if el is not None else ""
        return text or None

    def need(self, loai: str, i: int, fld: str) -> str:
        """Text of a field the recipe depends on (NotApplicable when absent)."""
        value = self.get(loai, i, fld)
        if value is None:
            raise NotApplicable(f"{loai}[{i}] has no {fld}")
        return value

    def stt(self, loai: str, i: int) -> str:
        """STT of a record ('' for single-record papers)."""
        return self.get(loai, i, "STT") or ""

    def find(self, loai: str, pred: Callable[[int], bool]) -> int:
        """Index of the first record matching pred (NotApplicable if none)."""
        for i in range(len(self.records(loai))):
            if pred(i):
                return i
        raise NotApplicable(f"no matching {loai} record")

    # --- editing --------------------------------------------------------------------------------
    def set(self, loai: str, i: int, fld: str, value: str) -> None:
        """Set a field, appending the element when absent."""
        rec = self.records(loai)[i]
        el = rec.find(fld)
        if el is None:
            el = etree.SubElement(rec, fld)
        el.text = value

    def remove(self, loai: str, i: int, fld: str) -> None:
        """Remove a field element."""
        rec = self.records(loai)[i]
        for el in rec.findall(fld):
            rec.remove(el)

    def rename(self, loai: str, i: int, old: str, new: str) -> None:
        """Rename a field element."""
        el = self.records(loai)[i].find(old)
        if el is None:
            raise NotApplicable(f"{loai} has no {old}")
        el.tag = new

    def add_money(self, loai: str, i: int, fld: str, delta: str) -> None:
        """Add a decimal amount to a money field."""
        self.set(loai, i, fld, _plain(Decimal(self.need(loai, i, fld)) + Decimal(delta)))

    def echo(self, fld: str, value: str | None) -> None:
        """Set (None: remove) an XML1 field and its copies in the papers that echo it (XML13, XML14...)."""
        for loai, mapping in load_rules().by_id("QD130-ALL-017").spec["tables"].items():
            if not self.has(loai):
                continue
            for paper_field, x1 in mapping.items():
                if x1 == fld and self.get(loai, 0, paper_field) is not None:
                    self._put(loai, paper_field, value)
        self._put("XML1", fld, value)

    def _put(self, loai: str, fld: str, value: str | None) -> None:
        """Set or (None) remove a field of the single record of a table."""
        if value is None:
            self.remove(loai, 0, fld)
        else:
            self.set(loai, 0, fld, value)

    def add_table(self, loai: str, fields: dict[str, str]) -> None:
        """Add a table holding one record with the given fields."""
        spec = tables_config()["tables"][loai]
        root = etree.Element(spec["root"])
        rec = root
        if spec["record"] != spec["root"]:
            wrapper = etree.SubElement(root, "DSACH_" + spec["record"])
            rec = etree.SubElement(wrapper, spec["record"])
        for k, v in fields.items():
            etree.SubElement(rec, k).text = v
        self.docs[loai] = root

    def drop_table(self, loai: str) -> None:
        """Remove a table from the HOSO."""
        if loai not in self.docs:
            raise NotApplicable(f"no {loai}")
        del self.docs[loai]

    def to_bytes(self) -> bytes:
        """Re-encode the envelope (tables in order XML1..XML15)."""
        order = sorted(self.docs, key=lambda loai: int(loai[3:]))
        files = [
            (loai, etree.tostring(self.docs[loai], xml_declaration=True, encoding="utf-8")) for loai in order
        ]
        out = build_envelope(self.facility, [files], self.created, self.envelope_root, self.declared)
        for loai in self.corrupt:
            marker = f"<LOAIHOSO>{loai}</LOAIHOSO><NOIDUNGFILE>".encode()
            head, _, tail = out.partition(marker)
            out = head + marker + b"@@ not base64 @@" + tail[tail.index(b"</NOIDUNGFILE>") :]
        return out


def _plain(d: Decimal) -> str:
    """Decimal as the generator writes money: no exponent, no trailing zeros."""
    s = format(d, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def _shift(value: str, minutes: int = 0, days: int = 0) -> str:
    """Move a yyyyMMddHHmm (or yyyyMMdd) value."""
    fmt = "%Y%m%d%H%M" if len(value) == 12 else "%Y%m%d"
    return (datetime.strptime(value, fmt) + timedelta(minutes=minutes, days=days)).strftime(fmt)


X1 = ("XML1", 0)
Where = tuple[str, str, str]


def _x1(d: Dossier, fld: str) -> Where:
    """Where a finding on the XML1 record lands."""
    return ("XML1", d.stt("XML1", 0), fld)


def _at(d: Dossier, loai: str, i: int, fld: str) -> Where:
    """Where a finding on record i of a table lands."""
    return (loai, d.stt(loai, i), fld)


def _outpatient(d: Dossier) -> None:
    """Require an outpatient examination (no stay), else NotApplicable."""
    if d.get("XML1", 0, "MA_LOAI_KCB") != "01" or d.get("XML1", 0, "NGAY_VAO_NOI_TRU"):
        raise NotApplicable("needs an outpatient examination (MA_LOAI_KCB 01)")


def _referral(d: Dossier) -> None:
    """Require a referral out with its XML13, else NotApplicable."""
    if d.get("XML1", 0, "MA_LOAI_RV") not in ("2", "5") or not d.has("XML13"):
        raise NotApplicable("needs a referral (MA_LOAI_RV 2/5 with XML13)")


def _swap_share(d: Dossier, i: int, src: str, dst: str, amount: str) -> None:
    """Move an amount between two shares of an XML2 row and of the XML1 totals (sums still hold)."""
    if Decimal(d.need("XML2", i, src)) < Decimal(amount):
        raise NotApplicable(f"{src} too small")
    for loai, row in (("XML2", i), X1):
        d.add_money(loai, row, src, "-" + amount)
        d.add_money(loai, row, dst, amount)


# --- recipes: rule id -> edit that breaks exactly that rule, returning (table, STT, field) -----------


def _r_file_001(d: Dossier) -> Where:
    d.records("XML4")
    d.corrupt.add("XML4")
    return ("XML4", "", "NOIDUNGFILE")


def _r_file_002(d: Dossier) -> Where:
    d.declared = 2
    return ("", "", "SOLUONGHOSO")


def _r_file_003(d: Dossier) -> Where:
    d.rename("XML1", 0, "MA_THE_BHYT", "MA_THE")
    d.rename("XML1", 0, "MA_BENH_CHINH", "MA_BENH")
    return _x1(d, "")


def _r_all_004(d: Dossier) -> Where:
    if len(d.records("XML4")) < 2:
        raise NotApplicable("needs two XML4 rows")
    d.set("XML4", 1, "STT", d.need("XML4", 0, "STT"))
    return _at(d, "XML4", 1, "STT")


def _r_all_010(d: Dossier) -> Where:
    for part in ("T_NGUONKHAC_VTNN", "T_NGUONKHAC_VTTN", "T_NGUONKHAC_CL"):
        d.set("XML2", 0, part, "0")
    d.set("XML2", 0, "T_NGUONKHAC_NSNN", "100")
    return _at(d, "XML2", 0, "T_NGUONKHAC")


def _r_all_011(d: Dossier) -> Where:
    d.add_money("XML2", 0, "T_BNCCT", "1000")
    d.add_money("XML1", 0, "T_BNCCT", "1000")
    return _at(d, "XML2", 0, "THANH_TIEN_BV")


def _r_all_012(d: Dossier) -> Where:
    _swap_share(d, 0, "T_BHTT", "T_BNCCT", "1000")
    return _at(d, "XML2", 0, "T_BHTT")


def _r_all_013(d: Dossier) -> Where:
    i = d.find("XML2", lambda i: Decimal(d.need("XML2", i, "T_BNCCT")) >= 500)
    _swap_share(d, i, "T_BNCCT", "T_BNTT", "500")
    return _at(d, "XML2", i, "T_BNTT")


def _r_all_017(d: Dossier) -> Where:
    loai = "XML14" if d.has("XML14") else "XML13"
    d.need(loai, 0, "MA_BENH_CHINH")
    d.set(loai, 0, "MA_BENH_CHINH", "K29.0" if d.need("XML1", 0, "MA_BENH_CHINH") != "K29.0" else "K29.1")
    return _at(d, loai, 0, "MA_BENH_CHINH")


def _r_xml1_009(d: Dossier) -> Where:
    cccd = d.need("XML1", 0, "SO_CCCD")
    if len(cccd) != 12:
        raise NotApplicable("needs a 12-digit CCCD")
    d.set("XML1", 0, "SO_CCCD", "999" + cccd[3:])
    return _x1(d, "SO_CCCD")


def _r_xml1_012(d: Dossier) -> Where:
    d.echo("NGAY_SINH", d.need("XML1", 0, "NGAY_SINH")[:4] + "13010000")
    return _x1(d, "NGAY_SINH")


def _r_xml1_013(d: Dossier) -> Where:
    _outpatient(d)
    d.set("XML1", 0, "NGAY_RA", _shift(d.need("XML1", 0, "NGAY_VAO"), minutes=-1))
    return _x1(d, "NGAY_RA")


def _r_xml1_014(d: Dossier) -> Where:
    d.need("XML1", 0, "NGAY_VAO_NOI_TRU")
    d.set("XML1", 0, "NGAY_VAO_NOI_TRU", _shift(d.need("XML1", 0, "NGAY_VAO"), minutes=-1))
    return _x1(d, "NGAY_VAO_NOI_TRU")


def _r_xml1_015(d: Dossier) -> Where:
    _outpatient(d)
    d.set("XML1", 0, "SO_NGAY_DTRI", "5")
    return _x1(d, "SO_NGAY_DTRI")


def _r_xml1_016(d: Dossier) -> Where:
    _referral(d)
    d.echo("MA_NOI_DEN", d.need("XML1", 0, "MA_NOI_DEN")[:4])
    return _x1(d, "MA_NOI_DEN")


def _r_xml1_022(d: Dossier) -> Where:
    _outpatient(d)
    d.set("XML1", 0, "MA_LOAI_KCB", "11")
    return _x1(d, "MA_LOAI_KCB")


def _r_xml1_sum(fld: str, value: str | None = None) -> Callable[[Dossier], Where]:
    """Recipe: an XML1 total off by 1,000 VND (or set to `value`), detail rows unchanged."""

    def recipe(d: Dossier) -> Where:
        if value is None:
            d.add_money("XML1", 0, fld, "1000")
        else:
            d.set("XML1", 0, fld, value)
        return _x1(d, fld)

    return recipe


def _r_xml1_034(d: Dossier) -> Where:
    _referral(d)
    d.echo("MA_NOI_DEN", None)
    return _x1(d, "MA_NOI_DEN")


def _r_xml1_035(d: Dossier) -> Where:
    other = "01001" if d.facility != "01001" else "79001"
    d.set("XML1", 0, "MA_NOI_DI", d.get("XML1", 0, "MA_NOI_DI") or other)
    d.remove("XML1", 0, "GIAY_CHUYEN_TUYEN")
    return _x1(d, "GIAY_CHUYEN_TUYEN")


def _r_xml2_003(d: Dossier) -> Where:
    # double the price and halve the insurer ratio: THANH_TIEN_BH still fits, THANH_TIEN_BV does not
    d.set("XML2", 0, "DON_GIA", _plain(Decimal(d.need("XML2", 0, "DON_GIA")) * 2))
    d.set("XML2", 0, "TYLE_TT_BH", "50")
    return _at(d, "XML2", 0, "THANH_TIEN_BV")


def _r_xml3_004(d: Dossier) -> Where:
    d.set("XML3", 0, "MA_NHOM", "10")
    d.remove("XML3", 0, "TT_THAU")
    d.set("XML1", 0, "T_VTYT", d.need("XML3", 0, "THANH_TIEN_BV"))  # the row now counts as a supply
    return _at(d, "XML3", 0, "TT_THAU")


def _r_xml3_005(d: Dossier) -> Where:
    i = d.find("XML3", lambda i: d.get("XML3", i, "MA_NHOM") == "1")
    d.remove("XML3", i, "NGUOI_THUC_HIEN")
    return _at(d, "XML3", i, "NGUOI_THUC_HIEN")


def _r_xml4_004(d: Dossier) -> Where:
    code = d.need("XML4", 0, "MA_DICH_VU")
    j = d.find("XML3", lambda j: d.get("XML3", j, "MA_DICH_VU") == code)
    d.set("XML4", 0, "NGAY_KQ", _shift(d.need("XML3", j, "NGAY_YL"), minutes=-1))
    return _at(d, "XML4", 0, "NGAY_KQ")


def _r_xml8_001(d: Dossier) -> Where:
    _outpatient(d)
    d.add_table("XML8", {"MA_LK": d.need("XML1", 0, "MA_LK"), "MA_LOAI_KCB": "01", "NGAY_CT": d.created})
    return ("XML8", "", "")


def _r_xml9_001(d: Dossier) -> Where:
    d.add_table("XML9", {"MA_LK": d.need("XML1", 0, "MA_LK"), "MA_BHXH_NND": "0000000000"})
    return ("XML9", "", "MA_BHXH_NND")


def _r_xml13_002(d: Dossier) -> Where:
    if d.has("XML13") or d.get("XML1", 0, "MA_LOAI_RV") != "1":
        raise NotApplicable("needs a plain discharge without XML13")
    x1 = {f: d.need("XML1", 0, f) for f in ("MA_LK", "HO_TEN")}
    fields = {"SO_HOSO": "CT000001", "SO_CHUYENTUYEN": "0001", "GIAY_CHUYEN_TUYEN": "0001/GCT"}
    fields |= {"DAU_HIEU_LS": "Sốt", "QT_BENHLY": "Không cải thiện", "TEN_DICH_VU": "Khám Nội"}
    fields |= {"MA_LYDO_CT": "2", "HUONG_DIEU_TRI": "Điều trị tiếp", "PHUONGTIEN_VC": "Xe cứu thương"}
    fields |= {"MA_BAC_SI": "000001/79-CCHN", "MA_TTDV": "7900000001"}
    d.add_table("XML13", x1 | fields)
    return ("XML13", "", "")


def _r_xml13_003(d: Dossier) -> Where:
    _referral(d)
    d.drop_table("XML13")
    return _x1(d, "MA_LOAI_RV")


def _set(
    loai: str, fld: str, value: Callable[[Dossier], str] | str, pick: int = 0
) -> Callable[[Dossier], Where]:
    """Recipe: set one field of one record (value may be computed from the dossier)."""

    def recipe(d: Dossier) -> Where:
        d.records(loai)
        d.set(loai, pick, fld, value(d) if callable(value) else value)
        return _at(d, loai, pick, fld)

    return recipe


def _drop(loai: str, fld: str, pick: int = 0) -> Callable[[Dossier], Where]:
    """Recipe: remove one field (that the record has) from one record."""

    def recipe(d: Dossier) -> Where:
        d.need(loai, pick, fld)
        d.remove(loai, pick, fld)
        return _at(d, loai, pick, fld)

    return recipe


def _echoed(fld: str, value: str) -> Callable[[Dossier], Where]:
    """Recipe: set an XML1 field everywhere it is copied, so only the XML1 rule fires."""

    def recipe(d: Dossier) -> Where:
        d.echo(fld, value)
        return _x1(d, fld)

    return recipe


def _then(
    *steps: Callable[[Dossier], object], where: Callable[[Dossier], Where]
) -> Callable[[Dossier], Where]:
    """Recipe: several edits, then report where the finding lands."""

    def recipe(d: Dossier) -> Where:
        for step in steps:
            step(d)
        return where(d)

    return recipe


RECIPES: dict[str, Callable[[Dossier], Where]] = {
    "QD130-FILE-001": _r_file_001,
    "QD130-FILE-002": _r_file_002,
    "QD130-FILE-003": _r_file_003,
    "QD130-ALL-001": _drop("XML2", "MA_LK"),
    "QD130-ALL-002": _set("XML3", "MA_LK", lambda d: d.need("XML1", 0, "MA_LK") + "_X"),
    "QD130-ALL-003": _set("XML4", "STT", "0"),
    "QD130-ALL-004": _r_all_004,
    "QD130-ALL-005": _set("XML2", "GHI_CHU_RIENG", "ghi chú của bệnh viện"),
    "QD130-ALL-006": _set("XML2", "DON_VI_TINH", "V" * 51),
    "QD130-ALL-007": _set("XML4", "NGAY_KQ", lambda d: d.need("XML4", 0, "NGAY_KQ")[:4] + "02301000"),
    "QD130-ALL-008": _set("XML2", "SO_LUONG", "10,5"),
    "QD130-ALL-009": _set("XML2", "MUC_HUONG", "120"),
    "QD130-ALL-010": _r_all_010,
    "QD130-ALL-011": _r_all_011,
    "QD130-ALL-012": _r_all_012,
    "QD130-ALL-013": _r_all_013,
    "QD130-ALL-014": _set("XML2", "NGAY_TH_YL", lambda d: _shift(d.need("XML2", 0, "NGAY_YL"), minutes=-1)),
    "QD130-ALL-015": _set("XML2", "VET_THUONG_TP", "2"),
    "QD130-ALL-016": _set("XML4", "NGAY_KQ", lambda d: _shift(d.need("XML1", 0, "NGAY_RA"), days=1)),
    "QD130-ALL-017": _r_all_017,
    "QD130-XML1-001": _drop("XML1", "MA_BN"),
    "QD130-XML1-002": _set("XML1", "MA_DANTOC", "99"),
    "QD130-XML1-003": _set("XML1", "MA_QUOCTICH", "999"),
    "QD130-XML1-004": _drop("XML1", "GT_THE_TU"),
    "QD130-XML1-005": _set("XML1", "GT_THE_DEN", lambda d: d.need("XML1", 0, "GT_THE_DEN") + ";20991231"),
    "QD130-XML1-006": _set("XML1", "GT_THE_TU", lambda d: d.need("XML1", 0, "GT_THE_TU")[:4] + "0231"),
    "QD130-XML1-007": _set("XML1", "MA_THE_BHYT", "DN47901234"),
    "QD130-XML1-008": _set("XML1", "SO_CCCD", "12345"),
    "QD130-XML1-009": _r_xml1_009,
    "QD130-XML1-010": _echoed("GIOI_TINH", "4"),
    "QD130-XML1-011": _set("XML1", "NGAY_TTOAN", lambda d: d.need("XML1", 0, "NGAY_TTOAN")[:4] + "13011200"),
    "QD130-XML1-012": _r_xml1_012,
    "QD130-XML1-013": _r_xml1_013,
    "QD130-XML1-014": _r_xml1_014,
    "QD130-XML1-015": _r_xml1_015,
    "QD130-XML1-016": _r_xml1_016,
    "QD130-XML1-017": _set("XML1", "MA_TTDV", "79000001"),
    "QD130-XML1-018": _set("XML1", "NAM_NAM_LIEN_TUC", "20231301"),
    "QD130-XML1-019": _echoed("MA_BENH_CHINH", "J00;I10"),
    "QD130-XML1-020": _set("XML1", "MA_BENH_KT", "I10;E785"),
    "QD130-XML1-021": _set("XML1", "MA_BENH_KT", "K99.9"),
    "QD130-XML1-022": _r_xml1_022,
    "QD130-XML1-023": _set("XML1", "MA_DOITUONG_KCB", "4.4"),
    "QD130-XML1-024": _set("XML1", "MA_KHOA", lambda d: d.need("XML1", 0, "MA_KHOA") + ";K99"),
    "QD130-XML1-025": _echoed("MA_CSKCB", "99999"),
    "QD130-XML1-026": _r_xml1_sum("T_TONGCHI_BV"),
    "QD130-XML1-027": _r_xml1_sum("T_TONGCHI_BH"),
    "QD130-XML1-028": _r_xml1_sum("T_THUOC"),
    "QD130-XML1-029": _r_xml1_sum("T_VTYT", "1000"),
    "QD130-XML1-030": _r_xml1_sum("T_BNTT", "1000"),
    "QD130-XML1-031": _r_xml1_sum("T_BNCCT"),
    "QD130-XML1-032": _r_xml1_sum("T_BHTT"),
    "QD130-XML1-033": _r_xml1_sum("T_NGUONKHAC", "1000"),
    "QD130-XML1-034": _r_xml1_034,
    "QD130-XML1-035": _r_xml1_035,
    "QD130-XML1-036": _set("XML1", "KET_QUA_DTRI", "9"),
    "QD130-XML1-037": _set("XML1", "MA_BENH_YHCT", "YHCT-KHAC"),
    "QD130-XML2-001": _drop("XML2", "MA_THUOC"),
    "QD130-XML2-002": _drop("XML2", "TT_THAU"),
    "QD130-XML2-003": _r_xml2_003,
    "QD130-XML2-004": _then(
        lambda d: d.set("XML2", 0, "TYLE_TT_BH", "50"), where=lambda d: _at(d, "XML2", 0, "THANH_TIEN_BH")
    ),
    "QD130-XML2-005": _set("XML2", "MA_THUOC", "40.99999"),
    "QD130-XML3-001": _drop("XML3", "MA_BAC_SI"),
    "QD130-XML3-002": _drop("XML3", "MA_DICH_VU"),
    "QD130-XML3-003": _then(
        lambda d: d.set("XML3", 0, "MA_NHOM", "12"), where=lambda d: _at(d, "XML3", 0, "MA_XANG_DAU")
    ),
    "QD130-XML3-004": _r_xml3_004,
    "QD130-XML3-005": _r_xml3_005,
    "QD130-XML3-006": _set("XML3", "GOI_VTYT", "G0"),
    "QD130-XML3-007": _set("XML3", "NGAY_KQ", lambda d: _shift(d.need("XML3", 0, "NGAY_YL"), minutes=-1)),
    "QD130-XML3-008": _then(
        lambda d: d.set("XML3", 0, "DON_GIA_BV", _plain(Decimal(d.need("XML3", 0, "DON_GIA_BV")) * 2)),
        where=lambda d: _at(d, "XML3", 0, "THANH_TIEN_BV"),
    ),
    "QD130-XML3-009": _then(
        lambda d: d.set("XML3", 0, "TYLE_TT_BH", "50"), where=lambda d: _at(d, "XML3", 0, "THANH_TIEN_BH")
    ),
    "QD130-XML3-010": _set("XML3", "MA_DICH_VU", "99.9999"),
    "QD130-XML4-001": _drop("XML4", "TEN_CHI_SO"),
    "QD130-XML4-002": _drop("XML4", "NGAY_KQ"),
    "QD130-XML4-003": _drop("XML4", "GIA_TRI"),
    "QD130-XML4-004": _r_xml4_004,
    "QD130-XML5-001": _drop("XML5", "NGUOI_THUC_HIEN"),
    "QD130-XML5-002": _drop("XML5", "DIEN_BIEN_LS"),
    "QD130-XML7-001": _drop("XML7", "TEN_BS"),
    "QD130-XML7-002": _then(
        lambda d: d.set("XML7", 0, "MA_DINH_CHI_THAI", "1"),
        lambda d: d.set("XML7", 0, "NGUYENNHAN_DINHCHI", "Thai lưu"),
        lambda d: d.set("XML7", 0, "TUOI_THAI", "12"),
        where=lambda d: _at(d, "XML7", 0, "THOIGIAN_DINHCHI"),
    ),
    "QD130-XML7-003": _then(
        lambda d: d.set("XML7", 0, "SO_NGAY_NGHI", "5"),
        lambda d: d.set("XML7", 0, "NGOAITRU_TUNGAY", d.need("XML7", 0, "NGAY_CT")),
        where=lambda d: _at(d, "XML7", 0, "NGOAITRU_DENNGAY"),
    ),
    "QD130-XML8-001": _r_xml8_001,
    "QD130-XML9-001": _r_xml9_001,
    "QD130-XML13-001": _drop("XML13", "DAU_HIEU_LS"),
    "QD130-XML13-002": _r_xml13_002,
    "QD130-XML13-003": _r_xml13_003,
    "QD130-XML14-001": _drop("XML14", "MA_BAC_SI"),
    "QD130-XML14-002": _set(
        "XML14", "NGAY_HEN_KL", lambda d: _shift(d.need("XML1", 0, "NGAY_RA"), minutes=-1)
    ),
    "QD130-XML14-003": _set("XML14", "NGAY_CT", lambda d: _shift(d.need("XML1", 0, "NGAY_VAO")[:8], days=-1)),
}


def inject(xml: bytes, rule_id: str) -> Injected:
    """Break `rule_id` in a one-HOSO envelope; NotApplicable when this visit cannot host it."""
    try:
        recipe = RECIPES[rule_id]
    except KeyError:
        raise ValueError(f"no violation recipe for {rule_id}") from None
    d = Dossier(xml)
    table, stt, fld = recipe(d)
    return Injected(d.to_bytes(), rule_id, table, stt, fld)

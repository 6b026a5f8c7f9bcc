"""Generate deterministic QĐ130 envelopes for several hospitals, with shared patients and referrals."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from . import vocab


@dataclass
class Person:
    """One real-world person (ground truth); each hospital gives them its own MA_BN."""

    person_id: str
    full_name: str
    sex: str  # "1" male, "2" female
    birth: str  # yyyyMMdd
    cccd: str
    bhyt: str
    province: str
    address: str
    phone: str
    mrn: dict[str, str] = field(default_factory=dict)  # facility → MA_BN


@dataclass
class Visit:
    """One generated HOSO (one envelope file) and its ground truth."""

    person_id: str
    facility: str
    ma_bn: str
    ma_lk: str
    filename: str
    xml: bytes
    kind: str  # outpatient | inpatient
    referred_to: str | None = None
    referred_from: str | None = None
    referral_paper: str | None = None  # GIAY_CHUYEN_TUYEN issued at this visit (XML13)


@dataclass
class SynthDataset:
    """Generated persons, visits and the (facility, MA_BN) → person ground truth."""

    hospitals: list[tuple]
    persons: list[Person]
    visits: list[Visit]

    def truth(self) -> dict[tuple[str, str], str]:
        """Ground truth: (facility code, MA_BN) → person id."""
        return {(f, bn): p.person_id for p in self.persons for f, bn in p.mrn.items()}

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write one envelope per visit (plus truth.csv) under out_dir/<facility>/; return the files."""
        out = Path(out_dir)
        paths = []
        for v in self.visits:
            d = out / v.facility
            d.mkdir(parents=True, exist_ok=True)
            p = d / v.filename
            p.write_bytes(v.xml)
            paths.append(p)
        lines = ["facility,ma_bn,person_id,cccd"]
        by_id = {p.person_id: p for p in self.persons}
        lines += [f"{f},{bn},{pid},{by_id[pid].cccd}" for (f, bn), pid in sorted(self.truth().items())]
        (out / "truth.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return paths


def _cdata(v: str) -> str:
    return f"<![CDATA[{v}]]>"


def _doc(
    root: str, rows: list[list[tuple[str, str]]], wrapper: str | None = None, record: str | None = None
) -> bytes:
    """Inner document: a single record at the root, or wrapper/record list."""

    def fields(r):
        return "".join(f"<{k}>{v}</{k}>" for k, v in r)

    if wrapper is None:
        body = fields(rows[0])
    else:
        body = f"<{wrapper}>" + "".join(f"<{record}>{fields(r)}</{record}>" for r in rows) + f"</{wrapper}>"
    return f'<?xml version="1.0" encoding="utf-8"?><{root}>{body}</{root}>'.encode()


def _envelope(facility: str, created: str, files: list[tuple[str, bytes]]) -> bytes:
    """GIAMDINHHS envelope with one HOSO."""
    fh = "".join(
        f"<FILEHOSO><LOAIHOSO>{loai}</LOAIHOSO><NOIDUNGFILE>{base64.b64encode(b).decode()}</NOIDUNGFILE></FILEHOSO>"
        for loai, b in files
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<GIAMDINHHS xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><THONGTINDONVI><MACSKCB>{facility}</MACSKCB>'
        f"</THONGTINDONVI><THONGTINHOSO><NGAYLAP>{created}</NGAYLAP><SOLUONGHOSO>1</SOLUONGHOSO><DANHSACHHOSO>"
        f"<HOSO>{fh}</HOSO></DANHSACHHOSO></THONGTINHOSO><CHUKYDONVI/></GIAMDINHHS>"
    ).encode()


def _fmt(dt: datetime) -> str:
    return dt.strftime("%Y%m%d%H%M")


def _money(x: float) -> str:
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return s or "0"


def _person(rng: random.Random, idx: int, hospitals: list[tuple]) -> Person:
    """A person with a structurally valid CCCD and BHYT card (unique by index)."""
    sex = rng.choice("12")
    fam = rng.choice(vocab.FAMILY)
    mid = rng.choice(vocab.MIDDLE_M if sex == "1" else vocab.MIDDLE_F)
    giv = rng.choice(vocab.GIVEN_M if sex == "1" else vocab.GIVEN_F)
    h = rng.choice(hospitals)
    year = rng.randint(1940, 2020)
    birth = f"{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    century_digit = {(19, "1"): "0", (19, "2"): "1", (20, "1"): "2", (20, "2"): "3"}[(year // 100, sex)]
    cccd = f"{h[1]}{century_digit}{year % 100:02d}{idx:06d}"
    cat = "TE" if year >= 2019 else rng.choice(["DN", "HC", "HT", "GD", "HS", "SV", "CN", "HN"])
    level = "1" if cat in ("TE", "CN") else rng.choice("2344")
    bhyt = f"{cat}{level}{h[2]}{h[2]}{idx:08d}"
    addr = f"Số {rng.randint(1, 300)} đường {rng.choice(vocab.STREETS)}, {h[4]}"
    return Person(
        f"P{idx:07d}",
        f"{fam} {mid} {giv}",
        sex,
        birth,
        cccd,
        bhyt,
        h[2],
        addr,
        f"09{rng.randint(10_000_000, 99_999_999)}",
    )


def generate(
    hospitals: int = 3,
    visits: int = 100,
    seed: int = 0,
    persons: int | None = None,
    missing_cccd_rate: float = 0.1,
    referral_rate: float = 0.1,
    start: str = "20240101",
) -> SynthDataset:
    """Deterministic dataset: `visits` HOSO files over `hospitals` facilities; persons revisit across hospitals."""
    if not 1 <= hospitals <= len(vocab.HOSPITALS):
        raise ValueError(f"hospitals must be 1..{len(vocab.HOSPITALS)}")
    rng = random.Random(seed)
    hs = vocab.HOSPITALS[:hospitals]
    n_persons = persons or max(1, visits // 3)
    people = [_person(rng, i + 1, hs) for i in range(n_persons)]
    clock = {
        p.person_id: datetime.strptime(start, "%Y%m%d") + timedelta(days=rng.randint(0, 200)) for p in people
    }
    out: list[Visit] = []
    pending: dict[str, tuple[str, str, str]] = {}  # person → (from facility, paper no., to facility)
    seq = 0
    while len(out) < visits:
        p = people[seq % n_persons] if seq < n_persons else rng.choice(people)
        seq += 1
        ref = pending.pop(p.person_id, None)
        h = next(x for x in hs if x[0] == ref[2]) if ref else rng.choice(hs)
        fac = h[0]
        if fac not in p.mrn:
            p.mrn[fac] = f"BN{fac[-3:]}{len(p.mrn) + 1}{int(p.person_id[1:]):07d}"
        when = clock[p.person_id] + timedelta(hours=rng.randint(7, 10), minutes=rng.choice((0, 15, 30, 45)))
        v = _visit(rng, p, h, hs, when, len(out) + 1, ref, missing_cccd_rate, referral_rate)
        clock[p.person_id] = when.replace(hour=0, minute=0) + timedelta(days=rng.randint(7, 60))
        if v.referred_to:
            pending[p.person_id] = (fac, v.referral_paper, v.referred_to)
        out.append(v)
    return SynthDataset(hs, people, out)


@dataclass
class _Plan:
    """The random decisions of one visit, taken in a fixed order so a seed always gives the same file."""

    p: Person
    h: tuple
    n: int
    t0: datetime
    ref: tuple | None
    ma_lk: str
    inpatient: bool
    dx: tuple
    sec: list[str]
    days: int
    t_in: datetime | None
    t_out: datetime
    refer_to: str | None
    muc: int
    doctor: str = ""
    tot: dict = field(
        default_factory=lambda: {"T_THUOC": 0.0, "T_VTYT": 0.0, "BV": 0.0, "BHTT": 0.0, "BNCCT": 0.0}
    )

    @property
    def fac(self) -> str:
        """The facility code (MA_CSKCB)."""
        return self.h[0]

    @property
    def ma_bn(self) -> str:
        """The patient's record number at this facility."""
        return self.p.mrn[self.fac]

    @property
    def ma_ttdv(self) -> str:
        """The head of the facility's practising code, as the papers carry it."""
        return f"{self.h[2]}{self.n % 10**8:08d}"

    def pay(self, amount: float) -> tuple[float, float]:
        """(insurance share, patient co-payment) of an amount at this card's benefit level."""
        bhtt = round(amount * self.muc / 100, 2)
        return bhtt, round(amount - bhtt, 2)

    def book(self, amount: float, drug: bool = False) -> tuple[float, float]:
        """Add a billed line to the XML1 totals; returns its (insurance, co-payment) shares."""
        bhtt, cct = self.pay(amount)
        if drug:
            self.tot["T_THUOC"] += amount
        self.tot["BV"] += amount
        self.tot["BHTT"] += bhtt
        self.tot["BNCCT"] += cct
        return bhtt, cct


def _plan(
    rng: random.Random, p: Person, h: tuple, hs: list[tuple], t0: datetime, n: int, ref, referral_rate: float
) -> _Plan:
    fac = h[0]
    inpatient = rng.random() < 0.25 or ref is not None and rng.random() < 0.5
    dx = rng.choice([d for d in vocab.DIAGNOSES if d[2]] if inpatient else vocab.DIAGNOSES)
    sec = [c for c in rng.sample(vocab.SECONDARY, rng.randint(0, 2)) if c != dx[0]]
    days = rng.randint(2, 7) if inpatient else 0
    t_in = t0 + timedelta(minutes=90) if inpatient else None
    t_out = (
        (t0 + timedelta(days=days - 1, hours=rng.randint(1, 6)))
        if inpatient
        else t0 + timedelta(minutes=rng.randint(60, 150))
    )
    others = [x for x in hs if x[0] != fac]
    refer_to = rng.choice(others)[0] if inpatient and others and rng.random() < referral_rate * 4 else None
    muc = {"1": 100, "2": 100, "5": 100, "3": 95, "4": 80}[p.bhyt[2]]
    plan = _Plan(
        p,
        h,
        n,
        t0,
        ref,
        f"{fac}_{t0:%Y%m%d}_{p.mrn[fac]}_{n:06d}",
        inpatient,
        dx,
        sec,
        days,
        t_in,
        t_out,
        refer_to,
        muc,
    )
    plan.doctor = f"{rng.randint(1, 999):06d}/{h[2]}-CCHN"
    return plan


def _drug_rows(rng: random.Random, v: _Plan) -> list[list[tuple[str, str]]]:
    """XML2: one to three drug order lines."""
    rows = []
    for i, d in enumerate(
        rng.sample(vocab.DRUGS if v.inpatient else vocab.DRUGS[:6], rng.randint(1, 3)), start=1
    ):
        qty = (v.days * 2) if d[4] == "2.15" else rng.choice((5, 10, 14, 15, 20))
        amount = round(qty * d[6], 2)
        bhtt, cct = v.book(amount, drug=True)
        t_yl = v.t0 + timedelta(minutes=60 + i)
        rows.append(
            [
                ("MA_LK", v.ma_lk),
                ("STT", str(i)),
                ("MA_THUOC", d[0]),
                ("MA_NHOM", "4"),
                ("TEN_THUOC", _cdata(d[1])),
                ("DON_VI_TINH", d[3]),
                ("HAM_LUONG", d[2]),
                ("DUONG_DUNG", d[4]),
                ("DANG_BAO_CHE", d[5]),
                ("LIEU_DUNG", _cdata(f"{d[7]} * {max(v.days, 5)} ngày")),
                ("CACH_DUNG", _cdata("Theo chỉ định")),
                ("SO_DANG_KY", f"VD-{rng.randint(10000, 99999)}-23"),
                ("TT_THAU", "0000/QĐ-SYT;G1;N4;2023"),
                ("PHAM_VI", "1"),
                ("TYLE_TT_BH", "100"),
                ("SO_LUONG", str(qty)),
                ("DON_GIA", _money(d[6])),
                ("THANH_TIEN_BV", _money(amount)),
                ("THANH_TIEN_BH", _money(amount)),
                ("T_NGUONKHAC", "0"),
                ("MUC_HUONG", str(v.muc)),
                ("T_BNTT", "0"),
                ("T_BNCCT", _money(cct)),
                ("T_BHTT", _money(bhtt)),
                ("MA_KHOA", "K03" if v.inpatient else "K01"),
                ("MA_BAC_SI", v.doctor),
                ("NGAY_YL", _fmt(t_yl)),
                ("NGAY_TH_YL", _fmt(t_yl + timedelta(minutes=10))),
                ("MA_PTTT", "1"),
                ("NGUON_CTRA", "1"),
            ]
        )
    return rows


def _service_rows(v: _Plan, labs: list) -> list[list[tuple[str, str]]]:
    """XML3: the exam, the lab panels, and for inpatients an X-ray and the bed-days."""
    services = [(vocab.EXAM, "13", 1)]
    services += [((lab[0], lab[1], lab[2]), "1", 1) for lab in labs]
    if v.inpatient:
        services.append(((vocab.IMAGING[0], vocab.IMAGING[1], vocab.IMAGING[2]), "2", 1))
        services.append((vocab.BED, "15", max(v.days - 1, 1)))
    rows = []
    for i, (svc, group, qty) in enumerate(services, start=1):
        amount = round(qty * svc[2], 2)
        bhtt, cct = v.book(amount)
        t_yl = v.t0 + timedelta(minutes=5 * i)
        rows.append(
            [
                ("MA_LK", v.ma_lk),
                ("STT", str(i)),
                ("MA_DICH_VU", svc[0]),
                ("MA_NHOM", group),
                ("TEN_DICH_VU", _cdata(svc[1])),
                ("DON_VI_TINH", "Ngày" if group == "15" else "Lần"),
                ("PHAM_VI", "1"),
                ("SO_LUONG", str(qty)),
                ("DON_GIA_BV", _money(svc[2])),
                ("DON_GIA_BH", _money(svc[2])),
                ("TYLE_TT_DV", "100"),
                ("TYLE_TT_BH", "100"),
                ("THANH_TIEN_BV", _money(amount)),
                ("THANH_TIEN_BH", _money(amount)),
                ("MUC_HUONG", str(v.muc)),
                ("T_NGUONKHAC", "0"),
                ("T_BNTT", "0"),
                ("T_BNCCT", _money(cct)),
                ("T_BHTT", _money(bhtt)),
                ("MA_KHOA", "K03" if group == "15" else "K01"),
                ("MA_BAC_SI", v.doctor),
                ("NGUOI_THUC_HIEN", v.doctor),
                ("MA_BENH", v.dx[0]),
                ("NGAY_YL", _fmt(t_yl)),
                ("NGAY_TH_YL", _fmt(t_yl + timedelta(minutes=5))),
                ("NGAY_KQ", _fmt(v.t_out if group == "15" else t_yl + timedelta(minutes=45))),
                ("MA_PTTT", "1"),
            ]
        )
    return rows


def _result_rows(rng: random.Random, v: _Plan, labs: list) -> list[list[tuple[str, str]]]:
    """XML4: one row per lab index (values inside the normal range), plus the X-ray reading."""
    rows = []
    stt = 0
    for lab in labs:
        for code, name, unit, lo, hi, dec in lab[3]:
            stt += 1
            val = round(rng.uniform(lo, hi), dec)
            rows.append(
                [
                    ("MA_LK", v.ma_lk),
                    ("STT", str(stt)),
                    ("MA_DICH_VU", lab[0]),
                    ("MA_CHI_SO", code),
                    ("TEN_CHI_SO", name),
                    ("GIA_TRI", str(val if dec else int(val))),
                    ("DON_VI_DO", unit),
                    ("NGAY_KQ", _fmt(v.t0 + timedelta(minutes=60))),
                    ("MA_BS_DOC_KQ", v.doctor),
                ]
            )
    if v.inpatient:
        stt += 1
        rows.append(
            [
                ("MA_LK", v.ma_lk),
                ("STT", str(stt)),
                ("MA_DICH_VU", vocab.IMAGING[0]),
                ("TEN_CHI_SO", vocab.IMAGING[1]),
                ("MO_TA", _cdata("Bóng tim không to. Đám mờ đáy phổi phải.")),
                ("KET_LUAN", _cdata("Hình ảnh viêm phổi đáy phải")),
                ("NGAY_KQ", _fmt(v.t0 + timedelta(minutes=80))),
                ("MA_BS_DOC_KQ", v.doctor),
            ]
        )
    return rows


def _summary_row(rng: random.Random, v: _Plan, name: str, cccd: str) -> list[tuple[str, str]]:
    """XML1: the visit summary with the totals of XML2/XML3."""
    p, t0, t_out, tot = v.p, v.t0, v.t_out, v.tot
    t_bv = round(tot["BV"], 2)
    return [
        ("MA_LK", v.ma_lk),
        ("STT", "1"),
        ("MA_BN", v.ma_bn),
        ("HO_TEN", _cdata(name)),
        ("SO_CCCD", cccd),
        ("NGAY_SINH", p.birth + "0000"),
        ("GIOI_TINH", p.sex),
        ("MA_QUOCTICH", "000"),
        ("MA_DANTOC", "01"),
        ("MA_NGHE_NGHIEP", "00000"),
        ("DIA_CHI", _cdata(p.address)),
        ("MATINH_CU_TRU", p.province),
        ("DIEN_THOAI", p.phone),
        ("MA_THE_BHYT", p.bhyt),
        ("MA_DKBD", f"{p.bhyt[3:5]}001"),
        ("GT_THE_TU", f"{t0:%Y}0101"),
        ("GT_THE_DEN", f"{t0:%Y}1231"),
        ("LY_DO_VV", _cdata(f"Khám vì {v.dx[1].lower()}")),
        ("LY_DO_VNT", _cdata(v.dx[1]) if v.inpatient else ""),
        ("CHAN_DOAN_VAO", _cdata(v.dx[1])),
        ("CHAN_DOAN_RV", _cdata("; ".join([v.dx[1]] + v.sec))),
        ("MA_BENH_CHINH", v.dx[0]),
        ("MA_BENH_KT", ";".join(v.sec)),
        ("MA_DOITUONG_KCB", "1.1" if not v.ref else "1.3"),
        ("MA_NOI_DI", v.ref[0] if v.ref else ""),
        ("MA_NOI_DEN", v.refer_to or ""),
        ("NGAY_VAO", _fmt(t0)),
        ("NGAY_VAO_NOI_TRU", _fmt(v.t_in) if v.t_in else ""),
        ("NGAY_RA", _fmt(t_out)),
        ("GIAY_CHUYEN_TUYEN", v.ref[1] if v.ref else ""),
        ("SO_NGAY_DTRI", str((t_out.date() - t0.date()).days + 1 if v.inpatient else 0)),
        ("KET_QUA_DTRI", "3" if v.refer_to else rng.choice("12")),
        ("MA_LOAI_RV", "2" if v.refer_to else "1"),
        ("NGAY_TTOAN", _fmt(t_out + timedelta(minutes=20))),
        ("T_THUOC", _money(tot["T_THUOC"])),
        ("T_VTYT", "0"),
        ("T_TONGCHI_BV", _money(t_bv)),
        ("T_TONGCHI_BH", _money(t_bv)),
        ("T_BNTT", "0"),
        ("T_BNCCT", _money(tot["BNCCT"])),
        ("T_BHTT", _money(tot["BHTT"])),
        ("T_NGUONKHAC", "0"),
        ("T_BHTT_GDV", _money(tot["BHTT"])),
        ("NAM_QT", f"{t_out:%Y}"),
        ("THANG_QT", str(t_out.month)),
        ("MA_LOAI_KCB", "03" if v.inpatient else "01"),
        ("MA_KHOA", "K01;K03" if v.inpatient else "K01"),
        ("MA_CSKCB", v.fac),
        ("CAN_NANG", f"{rng.uniform(40, 85):.2f}"),
        ("MA_HSBA", f"HS{v.n:08d}"),
        ("MA_TTDV", v.ma_ttdv),
    ]


def _progress_notes(rng: random.Random, v: _Plan) -> str:
    """XML5: one progress note per inpatient day, with the vital signs in the CSST<...> shorthand."""
    notes = []
    for d in range(max(v.days, 1)):
        pulse, temp = rng.randint(70, 110), round(rng.uniform(36.5, 39.5), 1)
        notes.append(
            [
                ("MA_LK", v.ma_lk),
                ("STT", str(d + 1)),
                (
                    "DIEN_BIEN_LS",
                    _cdata(
                        f"Ngày {d + 1}: bệnh tỉnh. CSST<M{pulse}_T{temp}_HA{rng.randint(100, 150)}/"
                        f"{rng.randint(60, 95)}_NT{rng.randint(16, 26)}_SP{rng.randint(90, 99)}_HL2>"
                    ),
                ),
                ("THOI_DIEM_DBLS", _fmt(v.t0 + timedelta(days=d, hours=2))),
                ("NGUOI_THUC_HIEN", v.doctor),
            ]
        )
    return _doc(
        "CHITIEU_CHITIET_DIENBIENLAMSANG", notes, "DSACH_CHI_TIET_DIEN_BIEN_BENH", "CHI_TIET_DIEN_BIEN_BENH"
    )


def _discharge_paper(rng: random.Random, v: _Plan) -> str:
    """XML7: the discharge paper (giấy ra viện)."""
    row = [
        ("MA_LK", v.ma_lk),
        ("SO_LUU_TRU", f"LT{v.n:08d}"),
        ("MA_YTE", v.ma_bn),
        ("MA_KHOA_RV", "K03"),
        ("NGAY_VAO", _fmt(v.t0)),
        ("NGAY_RA", _fmt(v.t_out)),
        ("CHAN_DOAN_RV", _cdata(v.dx[1])),
        ("PP_DIEUTRI", _cdata("Điều trị nội khoa")),
        ("MA_TTDV", v.ma_ttdv),
        ("MA_BS", f"{v.h[2]}{rng.randint(0, 10**8 - 1):08d}"),
        ("TEN_BS", "LÊ VĂN CƯỜNG"),
        ("NGAY_CT", f"{v.t_out:%Y%m%d}"),
    ]
    return _doc("CHI_TIEU_DU_LIEU_GIAY_RA_VIEN", [row])


def _referral_paper(v: _Plan, name: str, paper: str) -> str:
    """XML13: the BHYT referral paper (giấy chuyển tuyến)."""
    row = [
        ("MA_LK", v.ma_lk),
        ("SO_HOSO", f"CT{v.n:06d}"),
        ("SO_CHUYENTUYEN", f"{v.n:04d}"),
        ("GIAY_CHUYEN_TUYEN", paper),
        ("MA_CSKCB", v.fac),
        ("MA_NOI_DEN", v.refer_to or ""),
        ("HO_TEN", _cdata(name)),
        ("NGAY_SINH", v.p.birth + "0000"),
        ("GIOI_TINH", v.p.sex),
        ("DAU_HIEU_LS", _cdata("Sốt, khó thở")),
        ("QT_BENHLY", _cdata("Điều trị không cải thiện")),
        ("MA_BENH_CHINH", v.dx[0]),
        ("TEN_DICH_VU", _cdata(vocab.BED[1])),
        ("MA_LOAI_RV", "2"),
        ("MA_LYDO_CT", "2"),
        ("HUONG_DIEU_TRI", _cdata("Tiếp tục điều trị tại tuyến trên")),
        ("PHUONGTIEN_VC", "Xe cứu thương"),
        ("MA_BAC_SI", v.doctor),
        ("MA_TTDV", v.ma_ttdv),
    ]
    return _doc("CHI_TIEU_GIAYCHUYENTUYEN", [row])


def _reexam_paper(v: _Plan, name: str, t_hen: datetime) -> str:
    """XML14: the re-examination appointment paper (giấy hẹn khám lại)."""
    row = [
        ("MA_LK", v.ma_lk),
        ("SO_GIAYHEN_KL", f"HK{v.n:06d}"),
        ("MA_CSKCB", v.fac),
        ("HO_TEN", _cdata(name)),
        ("NGAY_HEN_KL", _fmt(t_hen.replace(hour=8, minute=0))),
        ("MA_BENH_CHINH", v.dx[0]),
        ("MA_BAC_SI", v.doctor),
        ("MA_TTDV", v.ma_ttdv),
        ("NGAY_CT", f"{v.t_out:%Y%m%d}"),
    ]
    return _doc("CHI_TIEU_GIAYHEN_KHAMLAI", [row])


def _visit(
    rng: random.Random,
    p: Person,
    h: tuple,
    hs: list[tuple],
    t0: datetime,
    n: int,
    ref: tuple | None,
    missing_cccd_rate: float,
    referral_rate: float,
) -> Visit:
    """One HOSO: XML1–XML4 always, XML5/XML7 for inpatients, XML13 on referral, XML14 sometimes."""
    v = _plan(rng, p, h, hs, t0, n, ref, referral_rate)
    drugs = _drug_rows(rng, v)
    labs = rng.sample(vocab.LABS, rng.randint(1, 2))
    services = _service_rows(v, labs)
    results = _result_rows(rng, v, labs)
    cccd = p.cccd if rng.random() >= missing_cccd_rate else ""
    name = p.full_name.upper() if rng.random() < 0.8 else p.full_name
    paper = f"{n:05d}/{t0:%Y}/GCT" if v.refer_to else ""
    xml1 = _summary_row(rng, v, name, cccd)
    reexam = not v.refer_to and rng.random() < 0.3
    t_hen = v.t_out + timedelta(days=14)
    if reexam:
        xml1.append(("NGAY_TAI_KHAM", f"{t_hen:%Y%m%d}"))
    files = [
        ("XML1", _doc("TONG_HOP", [xml1])),
        ("XML2", _doc("CHITIEU_CHITIET_THUOC", drugs, "DSACH_CHI_TIET_THUOC", "CHI_TIET_THUOC")),
        ("XML3", _doc("CHITIEU_CHITIET_DVKT_VTYT", services, "DSACH_CHI_TIET_DVKT", "CHI_TIET_DVKT")),
        ("XML4", _doc("CHITIEU_CHITIET_DICHVUCANLAMSANG", results, "DSACH_CHI_TIET_CLS", "CHI_TIET_CLS")),
    ]
    if v.inpatient:
        files.append(("XML5", _progress_notes(rng, v)))
        files.append(("XML7", _discharge_paper(rng, v)))
    if v.refer_to:
        files.append(("XML13", _referral_paper(v, name, paper)))
    if reexam and rng.random() < 0.5:
        files.append(("XML14", _reexam_paper(v, name, t_hen)))
    xml = _envelope(v.fac, f"{v.t_out:%Y%m%d}", files)
    return Visit(
        p.person_id,
        v.fac,
        v.ma_bn,
        v.ma_lk,
        f"{v.ma_lk}.xml",
        xml,
        "inpatient" if v.inpatient else "outpatient",
        referred_to=v.refer_to,
        referred_from=ref[0] if ref else None,
        referral_paper=paper or None,
    )

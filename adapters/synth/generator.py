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
    fac = h[0]
    ma_bn = p.mrn[fac]
    inpatient = rng.random() < 0.25 or ref is not None and rng.random() < 0.5
    dx = rng.choice([d for d in vocab.DIAGNOSES if d[2]] if inpatient else vocab.DIAGNOSES)
    sec = [c for c in rng.sample(vocab.SECONDARY, rng.randint(0, 2)) if c != dx[0]]
    ma_lk = f"{fac}_{t0:%Y%m%d}_{ma_bn}_{n:06d}"
    days = rng.randint(2, 7) if inpatient else 0
    t_in = t0 + timedelta(minutes=90) if inpatient else None
    t_out = (
        (t0 + timedelta(days=days - 1, hours=rng.randint(1, 6)))
        if inpatient
        else t0 + timedelta(minutes=rng.randint(60, 150))
    )
    others = [x for x in hs if x[0] != fac]
    refer_to = rng.choice(others)[0] if inpatient and others and rng.random() < referral_rate * 4 else None
    level = p.bhyt[2]
    muc = {"1": 100, "2": 100, "5": 100, "3": 95, "4": 80}[level]
    drugs_rows, svc_rows, cls_rows = [], [], []
    tot = {"T_THUOC": 0.0, "T_VTYT": 0.0, "BV": 0.0, "BHTT": 0.0, "BNCCT": 0.0}

    def pay(amount: float) -> tuple[float, float]:
        bhtt = round(amount * muc / 100, 2)
        return bhtt, round(amount - bhtt, 2)

    doctor = f"{rng.randint(1, 999):06d}/{h[2]}-CCHN"
    for i, d in enumerate(
        rng.sample(vocab.DRUGS if inpatient else vocab.DRUGS[:6], rng.randint(1, 3)), start=1
    ):
        qty = (days * 2) if d[4] == "2.15" else rng.choice((5, 10, 14, 15, 20))
        amount = round(qty * d[6], 2)
        bhtt, cct = pay(amount)
        tot["T_THUOC"] += amount
        tot["BV"] += amount
        tot["BHTT"] += bhtt
        tot["BNCCT"] += cct
        t_yl = t0 + timedelta(minutes=60 + i)
        drugs_rows.append(
            [
                ("MA_LK", ma_lk),
                ("STT", str(i)),
                ("MA_THUOC", d[0]),
                ("MA_NHOM", "4"),
                ("TEN_THUOC", _cdata(d[1])),
                ("DON_VI_TINH", d[3]),
                ("HAM_LUONG", d[2]),
                ("DUONG_DUNG", d[4]),
                ("DANG_BAO_CHE", d[5]),
                ("LIEU_DUNG", _cdata(f"{d[7]} * {max(days, 5)} ngày")),
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
                ("MUC_HUONG", str(muc)),
                ("T_BNTT", "0"),
                ("T_BNCCT", _money(cct)),
                ("T_BHTT", _money(bhtt)),
                ("MA_KHOA", "K03" if inpatient else "K01"),
                ("MA_BAC_SI", doctor),
                ("NGAY_YL", _fmt(t_yl)),
                ("NGAY_TH_YL", _fmt(t_yl + timedelta(minutes=10))),
                ("MA_PTTT", "1"),
                ("NGUON_CTRA", "1"),
            ]
        )
    services = [(vocab.EXAM, "13", 1)]
    labs = rng.sample(vocab.LABS, rng.randint(1, 2))
    services += [((lab[0], lab[1], lab[2]), "1", 1) for lab in labs]
    if inpatient:
        services.append(((vocab.IMAGING[0], vocab.IMAGING[1], vocab.IMAGING[2]), "2", 1))
        services.append((vocab.BED, "15", max(days - 1, 1)))
    for i, (svc, group, qty) in enumerate(services, start=1):
        amount = round(qty * svc[2], 2)
        bhtt, cct = pay(amount)
        tot["BV"] += amount
        tot["BHTT"] += bhtt
        tot["BNCCT"] += cct
        t_yl = t0 + timedelta(minutes=5 * i)
        svc_rows.append(
            [
                ("MA_LK", ma_lk),
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
                ("MUC_HUONG", str(muc)),
                ("T_NGUONKHAC", "0"),
                ("T_BNTT", "0"),
                ("T_BNCCT", _money(cct)),
                ("T_BHTT", _money(bhtt)),
                ("MA_KHOA", "K03" if group == "15" else "K01"),
                ("MA_BAC_SI", doctor),
                ("NGUOI_THUC_HIEN", doctor),
                ("MA_BENH", dx[0]),
                ("NGAY_YL", _fmt(t_yl)),
                ("NGAY_TH_YL", _fmt(t_yl + timedelta(minutes=5))),
                ("NGAY_KQ", _fmt(t_out if group == "15" else t_yl + timedelta(minutes=45))),
                ("MA_PTTT", "1"),
            ]
        )
    stt = 0
    for lab in labs:
        for code, name, unit, lo, hi, dec in lab[3]:
            stt += 1
            val = round(rng.uniform(lo, hi), dec)
            cls_rows.append(
                [
                    ("MA_LK", ma_lk),
                    ("STT", str(stt)),
                    ("MA_DICH_VU", lab[0]),
                    ("MA_CHI_SO", code),
                    ("TEN_CHI_SO", name),
                    ("GIA_TRI", str(val if dec else int(val))),
                    ("DON_VI_DO", unit),
                    ("NGAY_KQ", _fmt(t0 + timedelta(minutes=60))),
                    ("MA_BS_DOC_KQ", doctor),
                ]
            )
    if inpatient:
        stt += 1
        cls_rows.append(
            [
                ("MA_LK", ma_lk),
                ("STT", str(stt)),
                ("MA_DICH_VU", vocab.IMAGING[0]),
                ("TEN_CHI_SO", vocab.IMAGING[1]),
                ("MO_TA", _cdata("Bóng tim không to. Đám mờ đáy phổi phải.")),
                ("KET_LUAN", _cdata("Hình ảnh viêm phổi đáy phải")),
                ("NGAY_KQ", _fmt(t0 + timedelta(minutes=80))),
                ("MA_BS_DOC_KQ", doctor),
            ]
        )
    t_bv = round(tot["BV"], 2)
    cccd = p.cccd if rng.random() >= missing_cccd_rate else ""
    name = p.full_name.upper() if rng.random() < 0.8 else p.full_name
    kcb = "03" if inpatient else "01"
    paper = f"{n:05d}/{t0:%Y}/GCT" if refer_to else ""
    xml1 = [
        ("MA_LK", ma_lk),
        ("STT", "1"),
        ("MA_BN", ma_bn),
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
        ("LY_DO_VV", _cdata(f"Khám vì {dx[1].lower()}")),
        ("LY_DO_VNT", _cdata(dx[1]) if inpatient else ""),
        ("CHAN_DOAN_VAO", _cdata(dx[1])),
        ("CHAN_DOAN_RV", _cdata("; ".join([dx[1]] + sec))),
        ("MA_BENH_CHINH", dx[0]),
        ("MA_BENH_KT", ";".join(sec)),
        ("MA_DOITUONG_KCB", "1.1" if not ref else "1.3"),
        ("MA_NOI_DI", ref[0] if ref else ""),
        ("MA_NOI_DEN", refer_to or ""),
        ("NGAY_VAO", _fmt(t0)),
        ("NGAY_VAO_NOI_TRU", _fmt(t_in) if t_in else ""),
        ("NGAY_RA", _fmt(t_out)),
        ("GIAY_CHUYEN_TUYEN", ref[1] if ref else ""),
        ("SO_NGAY_DTRI", str((t_out.date() - t0.date()).days + 1 if inpatient else 0)),
        ("KET_QUA_DTRI", "3" if refer_to else rng.choice("12")),
        ("MA_LOAI_RV", "2" if refer_to else "1"),
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
        ("MA_LOAI_KCB", kcb),
        ("MA_KHOA", "K01;K03" if inpatient else "K01"),
        ("MA_CSKCB", fac),
        ("CAN_NANG", f"{rng.uniform(40, 85):.2f}"),
        ("MA_HSBA", f"HS{n:08d}"),
        ("MA_TTDV", f"{h[2]}{n % 10**8:08d}"),
    ]
    reexam = not refer_to and rng.random() < 0.3
    t_hen = t_out + timedelta(days=14)
    if reexam:
        xml1.append(("NGAY_TAI_KHAM", f"{t_hen:%Y%m%d}"))
    files = [
        ("XML1", _doc("TONG_HOP", [xml1])),
        ("XML2", _doc("CHITIEU_CHITIET_THUOC", drugs_rows, "DSACH_CHI_TIET_THUOC", "CHI_TIET_THUOC")),
        ("XML3", _doc("CHITIEU_CHITIET_DVKT_VTYT", svc_rows, "DSACH_CHI_TIET_DVKT", "CHI_TIET_DVKT")),
        ("XML4", _doc("CHITIEU_CHITIET_DICHVUCANLAMSANG", cls_rows, "DSACH_CHI_TIET_CLS", "CHI_TIET_CLS")),
    ]
    if inpatient:
        notes = []
        for d in range(max(days, 1)):
            pulse, temp = rng.randint(70, 110), round(rng.uniform(36.5, 39.5), 1)
            notes.append(
                [
                    ("MA_LK", ma_lk),
                    ("STT", str(d + 1)),
                    (
                        "DIEN_BIEN_LS",
                        _cdata(
                            f"Ngày {d + 1}: bệnh tỉnh. CSST<M{pulse}_T{temp}_HA{rng.randint(100, 150)}/"
                            f"{rng.randint(60, 95)}_NT{rng.randint(16, 26)}_SP{rng.randint(90, 99)}_HL2>"
                        ),
                    ),
                    ("THOI_DIEM_DBLS", _fmt(t0 + timedelta(days=d, hours=2))),
                    ("NGUOI_THUC_HIEN", doctor),
                ]
            )
        files.append(
            (
                "XML5",
                _doc(
                    "CHITIEU_CHITIET_DIENBIENLAMSANG",
                    notes,
                    "DSACH_CHI_TIET_DIEN_BIEN_BENH",
                    "CHI_TIET_DIEN_BIEN_BENH",
                ),
            )
        )
        files.append(
            (
                "XML7",
                _doc(
                    "CHI_TIEU_DU_LIEU_GIAY_RA_VIEN",
                    [
                        [
                            ("MA_LK", ma_lk),
                            ("SO_LUU_TRU", f"LT{n:08d}"),
                            ("MA_YTE", ma_bn),
                            ("MA_KHOA_RV", "K03"),
                            ("NGAY_VAO", _fmt(t0)),
                            ("NGAY_RA", _fmt(t_out)),
                            ("CHAN_DOAN_RV", _cdata(dx[1])),
                            ("PP_DIEUTRI", _cdata("Điều trị nội khoa")),
                            ("MA_TTDV", f"{h[2]}{n % 10**8:08d}"),
                            ("MA_BS", f"{h[2]}{rng.randint(0, 10**8 - 1):08d}"),
                            ("TEN_BS", "LÊ VĂN CƯỜNG"),
                            ("NGAY_CT", f"{t_out:%Y%m%d}"),
                        ]
                    ],
                ),
            )
        )
    if refer_to:
        files.append(
            (
                "XML13",
                _doc(
                    "CHI_TIEU_GIAYCHUYENTUYEN",
                    [
                        [
                            ("MA_LK", ma_lk),
                            ("SO_HOSO", f"CT{n:06d}"),
                            ("SO_CHUYENTUYEN", f"{n:04d}"),
                            ("GIAY_CHUYEN_TUYEN", paper),
                            ("MA_CSKCB", fac),
                            ("MA_NOI_DEN", refer_to),
                            ("HO_TEN", _cdata(name)),
                            ("NGAY_SINH", p.birth + "0000"),
                            ("GIOI_TINH", p.sex),
                            ("DAU_HIEU_LS", _cdata("Sốt, khó thở")),
                            ("QT_BENHLY", _cdata("Điều trị không cải thiện")),
                            ("MA_BENH_CHINH", dx[0]),
                            ("TEN_DICH_VU", _cdata(vocab.BED[1])),
                            ("MA_LOAI_RV", "2"),
                            ("MA_LYDO_CT", "2"),
                            ("HUONG_DIEU_TRI", _cdata("Tiếp tục điều trị tại tuyến trên")),
                            ("PHUONGTIEN_VC", "Xe cứu thương"),
                            ("MA_BAC_SI", doctor),
                            ("MA_TTDV", f"{h[2]}{n % 10**8:08d}"),
                        ]
                    ],
                ),
            )
        )
    if reexam and rng.random() < 0.5:
        files.append(
            (
                "XML14",
                _doc(
                    "CHI_TIEU_GIAYHEN_KHAMLAI",
                    [
                        [
                            ("MA_LK", ma_lk),
                            ("SO_GIAYHEN_KL", f"HK{n:06d}"),
                            ("MA_CSKCB", fac),
                            ("HO_TEN", _cdata(name)),
                            ("NGAY_HEN_KL", _fmt(t_hen.replace(hour=8, minute=0))),
                            ("MA_BENH_CHINH", dx[0]),
                            ("MA_BAC_SI", doctor),
                            ("MA_TTDV", f"{h[2]}{n % 10**8:08d}"),
                            ("NGAY_CT", f"{t_out:%Y%m%d}"),
                        ]
                    ],
                ),
            )
        )
    xml = _envelope(fac, f"{t_out:%Y%m%d}", files)
    return Visit(
        p.person_id,
        fac,
        ma_bn,
        ma_lk,
        f"{ma_lk}.xml",
        xml,
        "inpatient" if inpatient else "outpatient",
        referred_to=refer_to,
        referred_from=ref[0] if ref else None,
        referral_paper=paper or None,
    )

"""Labelled synthetic Patient records (with the true person id) for tuning and testing the matcher.

Each synthetic person visits one or more hospitals; each hospital's Patient is shaped like the QĐ130
adapter's output (adapters/qd130/map_episode.py) and carries realistic noise: names in upper case
without accents, typos, dropped middle names, swapped day/month, year-only or 01-01 birth dates,
missing or changed identifiers, moved addresses. Twins and parent/child pairs sharing address and
phone are added as hard negatives.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from adapters.ids import deterministic_id
from adapters.names import human_name
from fhir_server.identity.cards import _cccd_tables
from fhir_server.text import fold
from mappings import load_yaml, profile_set

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@dataclass(frozen=True)
class Noise:
    """Per-record probabilities of each kind of damage."""

    no_accents: float = 0.30
    name_typo: float = 0.05
    drop_middle: float = 0.03
    year_only: float = 0.05
    placeholder_0101: float = 0.02
    swap_day_month: float = 0.03
    year_typo: float = 0.01
    no_cccd: float = 0.45
    cccd_typo: float = 0.01
    no_bhyt: float = 0.30
    bhyt_group_change: float = 0.30
    no_phone: float = 0.35
    phone_changed: float = 0.10
    moved_ward: float = 0.08
    moved_province: float = 0.03
    no_address_codes: float = 0.05
    no_gender: float = 0.01


@dataclass
class Person:
    """Ground truth for one human being."""

    person_id: str
    family: str
    middle: list[str]
    given: str
    sex: str
    birth: tuple[int, int, int]
    cccd: str
    bhxh: str
    phone: str
    province: str
    district: str
    ward: str


@dataclass
class SynthPatient:
    """One hospital's Patient resource plus the person it really belongs to."""

    resource: dict
    person_id: str
    facility: str


@dataclass
class SynthSet:
    """A generated data set: records and the people behind them."""

    records: list[SynthPatient] = field(default_factory=list)
    persons: int = 0

    def true_pairs(self) -> int:
        """Number of record pairs that belong to the same person."""
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r.person_id] = counts.get(r.person_id, 0) + 1
        return sum(c * (c - 1) // 2 for c in counts.values())


def _weighted(rng: random.Random, pool: list) -> str:
    names = [p[0] for p in pool]
    weights = [float(p[1]) for p in pool]
    return rng.choices(names, weights)[0]


class Generator:
    """Seeded generator of people and their per-hospital Patient records."""

    def __init__(
        self, seed: int = 130, noise: Noise | None = None, hospitals: int = 20, profile: str = "hl7vn"
    ):
        self.rng = random.Random(seed)
        self.noise = noise or Noise()
        self.ps = profile_set(profile)
        pools = load_yaml("identity/synthetic.yaml")
        self.pools = pools
        fam = load_yaml("identity/family_names.yaml")["frequencies"]
        self.family_names = list(fam)
        self.family_weights = [float(v) for v in fam.values()]
        provinces, _ = _cccd_tables()
        self.provinces = sorted(provinces)
        self.facilities = [f"{self.rng.choice(self.provinces)[1:]}{i + 1:03d}" for i in range(hospitals)]
        self._next_mrn: dict[str, int] = {}
        self._n_person = 0
        self._used_ids: set[str] = set()

    # -- people ----------------------------------------------------------------------------------
    def _unique(self, make) -> str:
        while True:
            value = make()
            if value not in self._used_ids:
                self._used_ids.add(value)
                return value

    def _digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def _address(self, province: str) -> tuple[str, str, str]:
        # Synthetic but consistent hierarchy: 12 districts per province, 15 wards per district.
        d = self.rng.randrange(12)
        w = self.rng.randrange(15)
        district = f"{int(province) * 12 + d:03d}"[-3:]
        ward = f"{(int(province) * 12 + d) * 15 + w:05d}"
        return province, district, ward

    def person(
        self,
        sex: str | None = None,
        family: str | None = None,
        birth: tuple[int, int, int] | None = None,
        home: tuple[str, str, str] | None = None,
        phone: str | None = None,
    ) -> Person:
        """A new person; fixed attributes let callers build twins and parent/child pairs."""
        rng = self.rng
        self._n_person += 1
        sex = sex or rng.choice(("male", "female"))
        family = family or rng.choices(self.family_names, self.family_weights)[0]
        middle = [_weighted(rng, self.pools["middle"][sex])]
        if rng.random() < 0.15:
            second = _weighted(rng, self.pools["middle"][sex])
            if second != middle[0]:
                middle.append(second)
        given = rng.choice(self.pools["given"][sex])
        if birth is None:
            year = rng.randint(1935, 2024)
            birth = (year, rng.randint(1, 12), rng.randint(1, 28))
        birth_province = rng.choice(self.provinces)
        century = (birth[0] // 100 - 19) * 2 + (1 if sex == "female" else 0)
        cccd = self._unique(lambda: f"{birth_province}{century}{birth[0] % 100:02d}{self._digits(6)}")
        bhxh = self._unique(lambda: f"{rng.choice(self.provinces)[1:]}{self._digits(8)}")
        phone = phone or self._unique(lambda: "0" + rng.choice("35789") + self._digits(8))
        home = home or self._address(birth_province if rng.random() < 0.7 else rng.choice(self.provinces))
        return Person(
            f"person-{self._n_person:07d}", family, middle, given, sex, birth, cccd, bhxh, phone, *home
        )

    # -- one hospital's view of a person -----------------------------------------------------------
    def _typo(self, word: str) -> str:
        rng = self.rng
        if len(word) < 3:
            return word
        i = rng.randrange(1, len(word))
        op = rng.randrange(3)
        if op == 0:
            return word[:i] + word[i + 1 :]
        if op == 1 and i < len(word) - 1:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        return word[:i] + rng.choice("aeiouhnt") + word[i + 1 :]

    def record(self, p: Person, facility: str) -> SynthPatient:
        """The Patient resource `facility` would send for person `p`, with noise applied."""
        rng, nz, sysm = self.rng, self.noise, self.ps["identifier_systems"]
        family, middle, given = p.family, list(p.middle), p.given
        if rng.random() < nz.drop_middle and middle:
            middle = middle[:-1]
        if rng.random() < nz.name_typo:
            if rng.random() < 0.7:
                given = self._typo(given)
            else:
                family = self._typo(family)
        full = " ".join([family, *middle, given])
        full = full.upper() if rng.random() < 0.5 else full
        if rng.random() < nz.no_accents:
            full = fold(full).upper()
        self._next_mrn[facility] = self._next_mrn.get(facility, 0) + 1
        ma_bn = f"BN{self._next_mrn[facility]:08d}"
        org = {"reference": f"Organization/{deterministic_id('Organization', facility)}"}
        idents: list[dict] = [
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": f"{sysm['mrn']}/{facility}",
                "value": ma_bn,
                "assigner": org,
            }
        ]
        if rng.random() >= nz.no_cccd:
            cccd = p.cccd
            if rng.random() < nz.cccd_typo:
                i = rng.randrange(6, 12)
                cccd = cccd[:i] + str((int(cccd[i]) + 1) % 10) + cccd[i + 1 :]
            idents.append(
                {
                    "use": "official",
                    "type": {"coding": [{"system": V2_0203, "code": "NI"}]},
                    "system": sysm["cccd"],
                    "value": cccd,
                }
            )
        if rng.random() >= nz.no_bhyt:
            idents.append(
                {
                    "use": "secondary",
                    "type": {"coding": [{"system": V2_0203, "code": "SB"}]},
                    "system": sysm["bhyt"],
                    "value": self._card(p),
                }
            )
        pat: dict = {
            "resourceType": "Patient",
            "id": deterministic_id("Patient", facility, ma_bn),
            "meta": {"profile": [self.ps["profiles"]["Patient"]]},
            "identifier": idents,
            "active": True,
            "name": [human_name(full)],
        }
        if rng.random() >= nz.no_phone:
            phone = p.phone
            if rng.random() < nz.phone_changed:
                phone = "0" + rng.choice("35789") + self._digits(8)
            elif rng.random() < 0.3:
                phone = "+84 " + phone[1:4] + " " + phone[4:7] + " " + phone[7:]
            pat["telecom"] = [{"system": "phone", "value": phone}]
        if rng.random() >= nz.no_gender:
            pat["gender"] = p.sex
        pat["birthDate"] = self._birth(p.birth)
        pat["address"] = [self._address_of(p)]
        pat["managingOrganization"] = org
        return SynthPatient(pat, p.person_id, facility)

    def _card(self, p: Person) -> str:
        rng = self.rng
        form = rng.random()
        if form < 0.15:
            return p.bhxh
        if form < 0.30:
            return p.cccd
        # The prefix depends on the beneficiary group at the time of the visit; it changes over life.
        seed = int(p.bhxh) if rng.random() >= self.noise.bhyt_group_change else rng.randrange(10**6)
        group, level = self.pools["bhyt_groups"][seed % len(self.pools["bhyt_groups"])]
        return f"{group}{level}{p.bhxh[:2]}{p.bhxh}"

    def _birth(self, birth: tuple[int, int, int]) -> str:
        rng, nz = self.rng, self.noise
        y, m, d = birth
        r = rng.random()
        if r < nz.year_only:
            return f"{y:04d}"
        r -= nz.year_only
        if r < nz.placeholder_0101:
            return f"{y:04d}-01-01"
        r -= nz.placeholder_0101
        if r < nz.swap_day_month and d <= 12 and d != m:
            m, d = d, m
        elif r < nz.swap_day_month + nz.year_typo:
            y = y + rng.choice((-1, 1)) if y % 10 not in (0, 9) else y + (1 if y % 10 == 0 else -1)
        return f"{y:04d}-{m:02d}-{d:02d}"

    def _address_of(self, p: Person) -> dict:
        rng, nz, ext = self.rng, self.noise, self.ps["extensions"]
        province, district, ward = p.province, p.district, p.ward
        r = rng.random()
        if r < nz.moved_province:
            province, district, ward = self._address(rng.choice(self.provinces))
        elif r < nz.moved_province + nz.moved_ward:
            province, district, ward = self._address(province)
        addr: dict = {"use": "home", "country": "VN", "text": f"Số {rng.randint(1, 300)}, xã {ward}"}
        if rng.random() >= nz.no_address_codes:
            addr["extension"] = [
                {"url": ext[k], "valueCoding": {"code": v}}
                for k, v in (("province", province[1:]), ("district", district), ("ward", ward))
            ]
        return addr

    # -- whole data sets -----------------------------------------------------------------------------
    def dataset(self, n_records: int, twin_rate: float = 0.02, family_rate: float = 0.03) -> SynthSet:
        """About n_records Patients across the hospitals, most people at 1 hospital, some at up to 5."""
        rng = self.rng
        out = SynthSet()
        people: list[Person] = []
        while len(people) * 1.6 < n_records:
            p = self.person()
            people.append(p)
            r = rng.random()
            if r < twin_rate:
                # Twin: same family, birth date, home and parent's phone; different given name and ids.
                people.append(
                    self.person(
                        sex=rng.choice(("male", "female")),
                        family=p.family,
                        birth=p.birth,
                        home=(p.province, p.district, p.ward),
                        phone=p.phone,
                    )
                )
            elif r < twin_rate + family_rate:
                y = min(p.birth[0] + rng.randint(20, 40), 2024)
                people.append(
                    self.person(
                        family=p.family,
                        birth=(y, rng.randint(1, 12), rng.randint(1, 28)),
                        home=(p.province, p.district, p.ward),
                        phone=p.phone,
                    )
                )
        for p in people:
            k = rng.choices((1, 2, 3, 4, 5), (60, 25, 10, 3, 2))[0]
            for facility in rng.sample(self.facilities, k):
                if len(out.records) >= n_records:
                    break
                out.records.append(self.record(p, facility))
        out.persons = len({r.person_id for r in out.records})
        return out


def generate(n_records: int, seed: int = 130, hospitals: int = 20, noise: Noise | None = None) -> SynthSet:
    """Convenience: a seeded labelled data set of about n_records Patient resources."""
    return Generator(seed=seed, noise=noise, hospitals=hospitals).dataset(n_records)

"""Deterministic Vietnamese Patient resources for benchmarks (names and places from mappings/synth)."""

from __future__ import annotations

import random

from adapters.names import human_name
from mappings import load_yaml, profile_set


class VietnamesePeople:
    """Draws realistic Patients: family-name-first names with diacritics, CCCD, address."""

    def __init__(self) -> None:
        data = load_yaml("synth/people.yaml")
        shares = load_yaml("identity/family_names.yaml")["frequencies"]
        self.families = list(shares)
        self.weights = list(shares.values())
        self.middle = data["middle_names"]
        self.given = data["given_names"]
        self.provinces = data["provinces"]
        self.streets = data["streets"]
        self.cccd_system = profile_set()["identifier_systems"]["cccd"]

    def person(self, rng: random.Random) -> dict:
        """One Patient resource."""
        sex = rng.choice(("male", "female"))
        family = rng.choices(self.families, self.weights)[0]
        full = f"{family} {rng.choice(self.middle[sex])} {rng.choice(self.given[sex])}".upper()
        year = rng.randint(1940, 2020)
        province, province_name, ward = rng.choice(self.provinces)
        # CCCD: 3-digit province of birth registration, century+sex digit, 2-digit year, 6 random digits.
        century_sex = (0 if year < 2000 else 2) + (0 if sex == "male" else 1)
        cccd = f"0{province}{century_sex}{year % 100:02d}{rng.randint(0, 999999):06d}"
        return {
            "resourceType": "Patient",
            "identifier": [{"system": self.cccd_system, "value": cccd}],
            "name": [human_name(full)],
            "gender": sex,
            "birthDate": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "address": [
                {
                    "text": f"Số {rng.randint(1, 300)} {rng.choice(self.streets)}, {province_name}",
                    "state": province,
                    "postalCode": ward,
                    "country": "VN",
                }
            ],
        }

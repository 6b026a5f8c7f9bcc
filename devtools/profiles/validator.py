"""A small profile validator for the 2020-21 Ministry VN Core guide (differential-only source).

The guide (github.com/hl7vn/vn-core-ig) was never published as a package with snapshots, and its profiles
derive from IPS 1.0.0, which no reachable registry serves. What can be checked honestly is each VN
profile's own differential — and those of its VN parents — over an instance that already passed the R4
checks (R4B models, R4 required bindings): cardinality (per parent instance, slices included), fixed and
pattern values, slicing by value/pattern/type discriminators, required (error) and extensible (warning)
bindings to the guide's enumerable value sets, and the datatype/extension profiles named in `type.profile`
(vn-core-address, extension-race, …). Not checked, and reported as such: IPS and other non-VN parents,
FHIRPath invariants, bindings to value sets the guide does not enumerate (SNOMED CT, LOINC, ICD-10).

    from devtools.profiles.validator import Validator
    issues = Validator.ehealth().validate(resource)   # against its meta.profile
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data" / "vn-core-ehealth.json.gz"
_FHIR_TYPES = (
    "Quantity CodeableConcept String Boolean Integer Range Ratio SampledData Time DateTime Period Attachment "
    "Coding Reference Identifier Address Uri Code Decimal Instant Date Age Duration Money"
).split()


@dataclass
class Issue:
    """One finding: severity error|warning|not-checked, the element id, what is wrong."""

    severity: str
    element: str
    message: str
    profile: str = ""

    def __str__(self) -> str:
        return f"{self.severity} {self.element}: {self.message}"


@dataclass
class _Node:
    """An instance value reached by a path, with the parent it hangs under."""

    value: object
    parent: int  # index of the parent node in the previous step's list
    key: str = ""  # JSON key it was found under (value[x] choices: 'valueQuantity')


@dataclass
class Validator:
    """Validates resources against the guide's profiles loaded from the compact extract."""

    profiles: dict
    valuesets: dict
    codesystems: dict
    checked_urls: set[str] = field(default_factory=set)
    _expanded: dict = field(default_factory=dict)

    @classmethod
    def ehealth(cls) -> Validator:
        """The 2020-21 Ministry guide (profile set `ehealth`)."""
        data = _load()
        return cls(data["profiles"], data["valuesets"], data["codesystems"])

    # --- entry points -------------------------------------------------------------------------
    def validate(self, resource: dict, profile: str | None = None) -> list[Issue]:
        """Issues of a resource against `profile` (else every meta.profile the guide defines)."""
        urls = [profile] if profile else (resource.get("meta") or {}).get("profile") or []
        issues: list[Issue] = []
        for url in urls:
            if url not in self.profiles:
                continue
            self.checked_urls.add(url)
            for sd_url in self._chain(url):
                issues += [
                    Issue(i.severity, i.element, i.message, sd_url)
                    for i in self._differential(resource, self.profiles[sd_url])
                ]
            base = self._non_vn_base(url)
            if base:
                issues.append(
                    Issue("not-checked", resource["resourceType"], f"parent {base} not available", url)
                )
        return issues

    def _chain(self, url: str) -> list[str]:
        """The profile and its VN parents (the guide's own definitions), most specific first."""
        out = []
        while url in self.profiles:
            out.append(url)
            url = self.profiles[url]["base"]
        return out

    def _non_vn_base(self, url: str) -> str | None:
        """The first parent that is neither a VN profile nor an R4 base type (IPS), if any."""
        while url in self.profiles:
            url = self.profiles[url]["base"]
        return None if url.startswith("http://hl7.org/fhir/StructureDefinition/") else url

    # --- differential -------------------------------------------------------------------------
    def _differential(self, root: object, sd: dict) -> list[Issue]:
        elements = {e["id"]: e for e in sd["elements"]}
        issues: list[Issue] = []
        undecidable = self._undecidable_slices(elements)
        for slice_id in sorted(undecidable):
            issues.append(
                Issue("not-checked", slice_id, "slice membership cannot be decided from the differential")
            )
        for el in sd["elements"]:
            steps = _steps(el["id"])
            if len(steps) == 1:
                continue  # the root element itself
            if any(_id(steps[: i + 1]) in undecidable for i in range(len(steps))):
                continue
            parents = self._nodes(root, steps[:-1], elements)
            children = self._nodes(root, steps, elements)
            name, slice_name = steps[-1]
            per_parent: dict[int, int] = {}
            for c in children:
                per_parent[c.parent] = per_parent.get(c.parent, 0) + 1
            lo, hi = el.get("min"), el.get("max")
            for i, _ in enumerate(parents):
                n = per_parent.get(i, 0)
                if lo is not None and n < lo:
                    issues.append(Issue("error", el["id"], f"minimum cardinality {lo}, found {n}"))
                if hi not in (None, "*") and n > int(hi):
                    issues.append(Issue("error", el["id"], f"maximum cardinality {hi}, found {n}"))
            for c in children:
                issues += self._values(el, c.value)
                issues += self._types(el, c)
        return issues

    def _values(self, el: dict, value: object) -> list[Issue]:
        out = []
        if "fixed" in el and value != el["fixed"]["value"]:
            out.append(Issue("error", el["id"], f"fixed value {el['fixed']['value']!r}, found {value!r}"))
        if "pattern" in el and not _matches(value, el["pattern"]["value"]):
            out.append(
                Issue("error", el["id"], f"pattern {el['pattern']['value']!r} not matched by {value!r}")
            )
        binding = el.get("binding")
        if binding and binding.get("valueSet") and binding["strength"] in ("required", "extensible"):
            verdict = self._in_valueset(value, binding["valueSet"])
            if verdict is None:
                out.append(
                    Issue("not-checked", el["id"], f"value set {binding['valueSet']} is not enumerable here")
                )
            elif not verdict:
                sev = "error" if binding["strength"] == "required" else "warning"
                out.append(
                    Issue(
                        sev, el["id"], f"{_codes(value)} not in {binding['valueSet']} ({binding['strength']})"
                    )
                )
        return out

    def _types(self, el: dict, node: _Node) -> list[Issue]:
        """Datatype and extension profiles named by the element (type.profile) applied to the instance."""
        out = []
        for t in el.get("type") or []:
            for prof in t.get("profile") or []:
                if prof in self.profiles and isinstance(node.value, dict):
                    self.checked_urls.add(prof)
                    for sd_url in self._chain(prof):
                        out += self._differential(node.value, self.profiles[sd_url])
        return out

    # --- paths and slices ---------------------------------------------------------------------
    def _nodes(self, root: object, steps: list[tuple[str, str | None]], elements: dict) -> list[_Node]:
        """Instance values at an element id (slices filtered by their discriminators)."""
        current = [_Node(root, 0)]
        for depth, (name, slice_name) in enumerate(steps[1:], start=1):
            nxt: list[_Node] = []
            for i, node in enumerate(current):
                for key, value in _children(node.value, name):
                    for item in value if isinstance(value, list) else [value]:
                        nxt.append(_Node(item, i, key))
            if slice_name:
                sliced_id = _id(steps[:depth]) + "." + name
                slice_id = sliced_id + ":" + slice_name
                nxt = [n for n in nxt if self._in_slice(n, elements.get(sliced_id), slice_id, elements)]
            current = nxt
        return current

    def _undecidable_slices(self, elements: dict) -> set[str]:
        """Slices whose discriminators name no value the slice fixes (their members cannot be told apart)."""
        out = set()
        for el_id, el in elements.items():
            if not el.get("sliceName"):
                continue
            sliced = elements.get(el_id.rsplit(":", 1)[0])
            if sliced is None or "slicing" not in sliced:
                out.add(el_id)
                continue
            for d in sliced["slicing"]["discriminator"]:
                if d["type"] == "type":
                    if not (el.get("type") or [{}])[0].get("code"):
                        out.add(el_id)
                elif self._discriminator_value(el, el_id, d["path"], elements) is None:
                    out.add(el_id)
        return out

    def _in_slice(self, node: _Node, sliced: dict | None, slice_id: str, elements: dict) -> bool:
        """Whether an instance belongs to a slice, by the sliced element's discriminators."""
        if sliced is None or "slicing" not in sliced:
            return False
        slice_el = elements.get(slice_id, {})
        for d in sliced["slicing"]["discriminator"]:
            if d["type"] == "type":
                wanted = (slice_el.get("type") or [{}])[0].get("code", "")
                if not node.key.lower().endswith(wanted.lower()) and not _is_type(node.value, wanted):
                    return False
                continue
            expected = self._discriminator_value(slice_el, slice_id, d["path"], elements)
            if expected is None:
                return False  # undecidable slices are skipped before this is asked
            if not any(_matches(v, expected) for v in _at(node.value, d["path"])):
                return False
        return True

    def _discriminator_value(self, slice_el: dict, slice_id: str, path: str, elements: dict) -> object:
        """The value a slice fixes at a discriminator path (on a child element, its pattern, or its profile)."""
        child = elements.get(f"{slice_id}.{path}")
        if child:
            spec = child.get("fixed") or child.get("pattern")
            if spec:
                return spec["value"]
        if path == "url":
            profiles = [p for t in slice_el.get("type") or [] for p in t.get("profile") or []]
            if profiles:
                return profiles[0]
        spec = slice_el.get("fixed") or slice_el.get("pattern")
        if spec:
            values = _at(spec["value"], path)
            if values:
                return values[0]
        head, _, rest = path.partition(".")
        parent = elements.get(f"{slice_id}.{head}")
        if parent and rest:
            spec = parent.get("fixed") or parent.get("pattern")
            if spec:
                values = _at(spec["value"], rest)
                return values[0] if values else None
        return None

    # --- terminology --------------------------------------------------------------------------
    def _in_valueset(self, value: object, url: str) -> bool | None:
        """True/False when the value set is enumerable from the guide's data, None when it is not."""
        allowed = self._expand(url.split("|")[0])
        if allowed is None:
            return None
        pairs = _coded(value)
        if not pairs:
            return True
        return any((s, c) in allowed or (None, c) in allowed for s, c in pairs)

    def _expand(self, url: str) -> frozenset | None:
        if url not in self._expanded:
            self._expanded[url] = self._expansion(url)
        return self._expanded[url]

    def _expansion(self, url: str) -> frozenset | None:
        vs = self.valuesets.get(url)
        if vs is None:
            return None
        out: set = set()
        for inc in vs["include"]:
            if inc["filtered"] or inc["valueSet"]:
                return None
            if inc["codes"]:
                out |= {(inc["system"], c) for c in inc["codes"]}
                continue
            cs = self.codesystems.get(inc["system"])
            if not cs or cs["content"] != "complete":
                return None
            out |= {(inc["system"], c) for c in cs["codes"]}
        return frozenset(out)


# --- helpers ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _load() -> dict:
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _steps(element_id: str) -> list[tuple[str, str | None]]:
    """'Patient.identifier:SoCMT.system' -> [('Patient', None), ('identifier', 'SoCMT'), ('system', None)]."""
    out = []
    for part in re.split(r"\.(?![^\[]*\])", element_id):
        name, _, slice_name = part.partition(":")
        out.append((name, slice_name or None))
    return out


def _id(steps: list[tuple[str, str | None]]) -> str:
    return ".".join(f"{n}:{s}" if s else n for n, s in steps)


def _children(value: object, name: str) -> list[tuple[str, object]]:
    """(key, value) pairs of a JSON object for an element name ('value[x]' matches valueQuantity, …)."""
    if not isinstance(value, dict):
        return []
    if name.endswith("[x]"):
        stem = name[:-3]
        return [(k, v) for k, v in value.items() if k.startswith(stem) and k[len(stem) :] in _FHIR_TYPES]
    return [(name, value[name])] if name in value else []


def _at(value: object, path: str) -> list[object]:
    """Values at a dotted path inside a JSON value (lists flattened)."""
    items = [value]
    for part in path.split("."):
        nxt = []
        for item in items:
            if isinstance(item, dict) and part in item:
                v = item[part]
                nxt += v if isinstance(v, list) else [v]
        items = nxt
    return items


def _matches(value: object, pattern: object) -> bool:
    """FHIR pattern semantics: every element of the pattern is present (lists: each item somewhere)."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(k in value and _matches(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        values = value if isinstance(value, list) else [value]
        return all(any(_matches(v, p) for v in values) for p in pattern)
    return value == pattern


def _is_type(value: object, type_code: str) -> bool:
    return type_code == "Quantity" and isinstance(value, dict) and "value" in value


def _coded(value: object) -> list[tuple[str | None, str]]:
    """(system, code) pairs of a code, Coding or CodeableConcept value."""
    if isinstance(value, str):
        return [(None, value)]
    if isinstance(value, dict):
        if "coding" in value:
            return [(c.get("system"), c.get("code")) for c in value["coding"] if c.get("code")]
        if "code" in value:
            return [(value.get("system"), value["code"])]
    return []


def _codes(value: object) -> str:
    return ", ".join(f"{s or ''}|{c}" for s, c in _coded(value)) or repr(value)

"""What a search or a compartment query returns: one page of stored resources, plus paging state.

Plain data shared by storage (which fills it) and the Bundle builder (which serializes it), so neither
imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson


@dataclass(slots=True)
class Hit:
    """One matched resource with its stored JSON bytes (and its sort-key values, for paging)."""

    rid: int
    res_type: str
    res_id: str
    content: bytes
    keys: tuple = ()


@dataclass
class Page:
    """One page of a search: matches, included resources, continuation tokens, total and warnings."""

    rows: list[Hit]
    included: list[Hit]
    next_token: str | None
    prev_token: str | None
    total: int | None
    issues: list[str]


KIND_PATIENT, KIND_COMPARTMENT, KIND_SUPPORT = 0, 1, 2


@dataclass
class CompartmentQuery:
    """Parsed `$everything` parameters (all optional)."""

    start: int | None = None  # µs, lower bound of the care-date range
    end: int | None = None  # µs, upper bound (inclusive)
    types: tuple[str, ...] | None = None
    since: int | None = None  # µs, lastUpdated lower bound (not applied to the Patients themselves)
    count: int | None = None  # page size; None = everything in one go (Python callers)
    after: tuple[int, int] | None = None  # (kind, rid) of the last row of the previous page
    linked: bool = True  # False: only this hospital's Patient record, not the link set
    # issue 17: False = rows without content (kind, rid, version, lastUpdated): a cheap fingerprint of the set
    content: bool = True
    # issue 17: True = no rows, only `CompartmentPage.summary` (one aggregate row: the view's freshness key)
    summary: bool = False
    # issue 17: True = `types` also limits the members whose references bring in supporting resources
    # (an Organization named only by a Claim is left out): a smaller, cheaper query for the clinician view
    members_of_types: bool = False


@dataclass(slots=True)
class CompartmentRow:
    """One resource of a compartment result: patient, compartment member or supporting resource."""

    kind: int
    rid: int
    res_type: str
    res_id: str
    content: bytes
    version: int = 0
    last_updated: int = 0  # µs

    def as_dict(self) -> dict:
        """Parse the stored JSON."""
        return orjson.loads(self.content)


@dataclass
class CompartmentPage:
    """One page of a compartment query."""

    patient_ids: list[str]
    rows: list[CompartmentRow] = field(default_factory=list)
    total: int = 0
    next_after: tuple[int, int] | None = None
    # (count, sum of rids, sum of versions, max lastUpdated) of the rows, when the query asked for a summary
    summary: tuple[int, int, int, int] | None = None

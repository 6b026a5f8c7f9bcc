"""Name search as clinicians type it (issue 20): accent-folded prefixes of a name part or of the whole
name read family first, one page taken from the index in insertion order, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest_asyncio

from tests.fhir_server.search.vn_data import transaction

PEOPLE = [
    ("bn01", "NGUYỄN VĂN AN"),
    ("bn02", "Nguyễn Thị Bình"),
    ("bn03", "TRẦN THỊ HOA"),
    ("bn04", "Lê Văn Nguyên"),
    ("bn05", "NGUYỄN VĂN ĐỨC"),
    ("bn06", "Nguyễn Thị Văn"),
]


def patient(pid: str, full: str) -> dict:
    """A Patient named the way QĐ130 and HL7 v2 adapters store it: family first, text kept whole."""
    family, *given = full.split()
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"use": "official", "text": full, "family": family, "given": given}],
    }


def ids(bundle: dict) -> list[str]:
    """Ids of the matches in page order."""
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def link(bundle: dict, relation: str) -> str | None:
    """The URL of a paging link, or None."""
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


@pytest_asyncio.fixture
async def people(client):
    """The client over six Patients and a Practitioner who shares their family and middle name."""
    doctor = {"resourceType": "Practitioner", "id": "bs01", "name": [{"family": "Nguyễn", "given": ["Văn"]}]}
    resp = await client.post("/", json=transaction([doctor] + [patient(p, n) for p, n in PEOPLE]))
    assert resp.status_code == 200, resp.text
    return client


async def test_typed_without_accents_finds_the_accented_name(people) -> None:
    assert ids((await people.get("/Patient?name=nguyen van")).json()) == ["bn01", "bn05"]


async def test_several_words_match_the_name_read_family_first_not_each_word_anywhere(people) -> None:
    # "Nguyễn Thị Văn" holds both words, but not in this order from the start of a name.
    assert ids((await people.get("/Patient?name=nguyen van")).json()) == ["bn01", "bn05"]
    assert ids((await people.get("/Patient?name=tran thi h")).json()) == ["bn03"]


async def test_one_word_matches_the_start_of_any_name_part(people) -> None:
    # family (NGUYỄN…), or a given name (Lê Văn Nguyên): FHIR string search on HumanName parts.
    found = ids((await people.get("/Patient?name=nguy")).json())
    assert found == ["bn01", "bn02", "bn04", "bn05", "bn06"]


async def test_d_with_stroke_folds_to_d(people) -> None:
    assert ids((await people.get("/Patient?name=nguyen van duc")).json()) == ["bn05"]


async def test_given_names_then_family_also_match(people) -> None:
    assert ids((await people.get("/Patient?name=van an nguyen")).json()) == ["bn01"]


async def test_other_resource_types_sharing_the_name_do_not_use_up_the_page(people) -> None:
    # The Practitioner "Nguyễn Văn" is written first: it must not take one of the two places.
    assert ids((await people.get("/Patient?name=nguyen&_count=2")).json()) == ["bn01", "bn02"]


async def test_a_patient_matching_by_several_name_parts_appears_once(people) -> None:
    # bn04 matches "nguyen" by a given name only; bn01 by family, text and full name: one entry each.
    page = (await people.get("/Patient?name=nguyen&_count=3")).json()
    assert ids(page) == ["bn01", "bn02", "bn04"]


async def test_count_pages_forward_and_back_without_gaps_or_repeats(people) -> None:
    first = (await people.get("/Patient?name=nguyen&_count=2")).json()
    second = (await people.get(link(first, "next"))).json()
    third = (await people.get(link(second, "next"))).json()
    assert [ids(first), ids(second), ids(third)] == [["bn01", "bn02"], ["bn04", "bn05"], ["bn06"]]
    assert link(third, "next") is None
    assert ids((await people.get(link(third, "previous"))).json()) == ["bn04", "bn05"]
    assert ids((await people.get(link(second, "previous"))).json()) == ["bn01", "bn02"]


async def test_renamed_and_deleted_patients_are_not_found_by_the_old_name(people) -> None:
    renamed = patient("bn01", "HOÀNG VĂN AN")
    assert (await people.put("/Patient/bn01", json=renamed)).status_code == 200
    assert (await people.delete("/Patient/bn05")).status_code in (200, 204)
    assert ids((await people.get("/Patient?name=nguyen van")).json()) == []
    assert ids((await people.get("/Patient?name=hoang van")).json()) == ["bn01"]


async def test_total_counts_every_match_not_only_the_page(people) -> None:
    page = (await people.get("/Patient?name=nguyen&_count=2&_total=accurate")).json()
    assert page["total"] == 5 and len(ids(page)) == 2

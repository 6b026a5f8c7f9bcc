"""`lienthong conceptmaps` puts the QĐ130 code maps into the server, where FHIR clients can read them."""

from __future__ import annotations

from typer.testing import CliRunner

from lienthong.cli import app


async def test_conceptmaps_command_loads_searchable_conceptmaps(db_url, client):
    result = CliRunner().invoke(app, ["conceptmaps", "--db", db_url])
    assert result.exit_code == 0, result.output
    bundle = (await client.get("ConceptMap?_count=100")).json()
    maps = [e["resource"] for e in bundle["entry"]]
    assert maps and all(m["resourceType"] == "ConceptMap" for m in maps)
    again = CliRunner().invoke(app, ["conceptmaps", "--db", db_url])
    assert again.exit_code == 0
    assert (await client.get("ConceptMap?_count=100")).json()["total"] == len(maps)

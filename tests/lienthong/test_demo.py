"""`lienthong demo`: synthetic exports of a few hospitals → ingest → link → URLs that show one person."""

from __future__ import annotations

from typer.testing import CliRunner

from lienthong.cli import app


def test_demo_links_a_person_seen_at_two_hospitals_and_prints_working_urls(db_url, tmp_path):
    r = CliRunner().invoke(
        app, ["--lang", "vi", "demo", "--db", db_url, "--out", str(tmp_path / "xuat"), "--visits", "40"]
    )
    assert r.exit_code == 0, r.output
    assert "nạp 40 lượt khám, từ chối 0" in r.output
    assert "hồ sơ Patient được liên kết thành một người" in r.output
    urls = [u for u in r.output.split() if u.startswith("http://127.0.0.1:8080/")]
    assert {u.split("8080")[1].split("/")[1].split("?")[0] for u in urls} == {"ui", "fhir"}
    assert len(list((tmp_path / "xuat").rglob("*.xml"))) == 40


async def test_demo_urls_answer_on_the_server(db_url, tmp_path, client):
    from fhir_server.settings import Settings
    from lienthong.demo import demo_urls, run_demo
    from lienthong.runtime import open_runtime

    settings = Settings(database_url=db_url)
    runtime = open_runtime(settings)
    try:
        result = run_demo(runtime, tmp_path / "xuat", hospitals=3, visits=40, seed=7)
    finally:
        runtime.store.close()
    assert len(result.linked_ids) >= 2 and len(result.hospitals) >= 2
    urls = dict(demo_urls(settings, result))
    paths = {what: url.split("8080", 1)[1] for what, url in urls.items()}
    by_cccd = next(p for p in paths.values() if "identifier=" in p)
    found = (await client.get("http://test" + by_cccd)).json()
    assert found["total"] == len(result.linked_ids)  # each hospital's record of the person, by CCCD
    view = next(p for p in paths.values() if p.startswith("/ui/patient/"))
    page = await client.get("http://test" + view)
    assert page.status_code == 200
    assert result.name.upper() in page.text.upper()

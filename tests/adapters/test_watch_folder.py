"""`lienthong watch`: files dropped in a folder are ingested, then moved to done/ or failed/."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from adapters.repository import ingest_repository
from lienthong.cli import app

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "standards" / "samples"


def test_drop_folder_ingests_good_files_and_sets_bad_ones_aside(tmp_path, db_url, store):
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copy(SAMPLES / "qd130-outpatient.xml", drop / "bv79999-ngoai-tru.xml")
    (drop / "hong.xml").write_bytes(b"<GIAMDINHHS><THONGTINDONVI><MACSKCB>79999")
    result = CliRunner().invoke(app, ["watch", str(drop), "--once", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert (drop / "done" / "bv79999-ngoai-tru.xml").exists()
    assert (drop / "failed" / "hong.xml").exists()
    assert not list(drop.glob("*.xml"))
    archived = {r["source"].rsplit("/", 1)[-1]: r["status"] for r in ingest_repository(store).list_inbox()}
    assert archived == {"bv79999-ngoai-tru.xml": "processed", "hong.xml": "failed"}

"""QĐ130 files as hospitals send them, derived from the published outpatient sample (shared/standards):
one visit of patient n at a facility on a given day, with or without a re-exam date (NGAY_TAI_KHAM)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from adapters.synth.envelope import build_envelope, read_files

SAMPLES = Path("/work/shared/standards/samples")
if not SAMPLES.exists():  # CI clones shared/ beside the repo
    SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "standards" / "samples"
SAMPLE_DAY = "20240315"
PEOPLE = ["NGUYỄN VĂN AN", "TRẦN THỊ BÍCH", "LÊ VĂN HÙNG", "PHẠM THỊ HOA", "HOÀNG VĂN NAM", "VÕ THỊ LAN"]


def qd130_visit(
    n: int, day: dt.date, visit: str = "KB01", facility: str = "79999", reexam: dt.date | None = None
) -> bytes:
    """The sample's outpatient visit, moved to patient n, `facility` and `day` (a re-exam date if given)."""
    files = []
    for loai, body in read_files((SAMPLES / "qd130-outpatient.xml").read_bytes())[0]:
        text = body.decode("utf-8")
        # MA_LK without the month: a re-sent file with a corrected day is the same visit
        text = text.replace("79999_2024_03_BN000123_KB01", f"{facility}_BN{n:06d}_{visit}")
        text = text.replace("BN000123", f"BN{n:06d}").replace("NGUYỄN VĂN AN", PEOPLE[n % len(PEOPLE)])
        text = text.replace("079090001234", f"0790900{n:05d}").replace("DN4797912345678", f"DN47979{n:08d}")
        text = text.replace("20240101", f"{day.year}0101").replace("20241231", f"{day.year}1231")
        text = text.replace(SAMPLE_DAY, f"{day:%Y%m%d}").replace("79999", facility)
        if reexam is not None:
            text = text.replace(
                "<NGAY_TAI_KHAM></NGAY_TAI_KHAM>", f"<NGAY_TAI_KHAM>{reexam:%Y%m%d}</NGAY_TAI_KHAM>"
            )
        files.append((loai, text.encode("utf-8")))
    return build_envelope(facility, [files])

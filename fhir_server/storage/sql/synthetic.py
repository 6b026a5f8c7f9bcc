"""Synthetic visit facts for benchmarks: millions of `report_visit` rows generated inside PostgreSQL.

One `INSERT … SELECT FROM generate_series` per million rows (no rows cross the wire, so 10M load in
minutes, not the hour a Python generator takes). Spreads: old provinces as given (two of them weighted 3×),
24 months from 2024-01-01, 80 % outpatient / 12 % inpatient / 7 % emergency, a skewed list of ICD-10 codes.
Used only by bench/bench_reports.py; never by the server.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, text

from fhir_server.storage.sql.reports import ReportRepository, report_visit

_FILL = text(
    """
INSERT INTO report_visit (encounter_id, patient_id, facility, province_old, province_new, day, week, month,
    quarter, year, visit_class, admitted, discharged, outcome, los_days, referral_in, referral_out,
    destination, icd_code, icd_block, icd_chapter, age_band, sex, bhyt, notifiable)
SELECT 'lk-' || g, 'bn-' || (h3 % :n), p.old || lpad((1 + h1 % 39)::text, 3, '0'), p.old, p.new,
    dd.day, dd.week, dd.month, dd.quarter, dd.year, c.cls, (c.cls = 'inpatient')::int, 1,
    CASE WHEN c.cls = 'inpatient' THEN (ARRAY['1','2','3','5'])[1 + h2 % 4] END,
    CASE WHEN c.cls = 'inpatient' THEN 1 + h2 % 15 END,
    (h4 % 100 < 5)::int, (h4 % 100 >= 97)::int, NULL, i.code, left(i.code, 3), 'X',
    (ARRAY['<1','1-4','5-14','15-59','60+'])[1 + h3 % 5], (ARRAY['male','female'])[1 + h1 % 2],
    (h4 % 10 < 9)::int, CASE WHEN i.code LIKE 'A9%' THEN 'dengue' END
FROM (
    SELECT g, h % 730 AS d, h % 1000003 AS h1, (h / 7) % 1000003 AS h2,
        (h / 13) % 1000003 AS h3, (h / 17) % 1000003 AS h4
    FROM (SELECT g, abs(hashtextextended(g::text, :seed)) AS h
          FROM generate_series(:first, :last) AS g) AS s
) AS r
JOIN (SELECT i, to_char(x, 'YYYY-MM-DD') AS day, to_char(x, 'IYYY-"W"IW') AS week,
             to_char(x, 'YYYY-MM') AS month, to_char(x, 'YYYY-"Q"Q') AS quarter, to_char(x, 'YYYY') AS year
      FROM generate_series(0, 729) AS i, LATERAL (SELECT DATE '2024-01-01' + i AS x) AS dx) AS dd ON dd.i = r.d
CROSS JOIN (SELECT CAST(:olds AS text[]) AS olds, CAST(:news AS text[]) AS news,
                   CAST(:icd AS text[]) AS icds) AS k
JOIN LATERAL (SELECT k.olds[1 + r.h1 % CAST(:nprov AS bigint)] AS old,
                     k.news[1 + r.h1 % CAST(:nprov AS bigint)] AS new) AS p ON true
JOIN LATERAL (SELECT CASE WHEN r.h2 % 100 < 80 THEN 'outpatient' WHEN r.h2 % 100 < 92 THEN 'inpatient'
                          WHEN r.h2 % 100 < 99 THEN 'emergency' ELSE 'other' END AS cls) AS c ON true
JOIN LATERAL (SELECT k.icds[1 + floor(cardinality(k.icds) * power((r.h4 % 10007) / 10007.0, 2))::int]
                     AS code) AS i ON true
"""
)


def fill_visits(
    engine: Engine,
    n: int,
    provinces: list[tuple[str, str]],
    icd_codes: list[str],
    progress: Callable[[int], None] | None = None,
    seed: int = 14,
) -> None:
    """Empty `report_visit` and fill it with n synthetic facts (PostgreSQL only), then VACUUM ANALYZE it."""
    weighted = [p for p in provinces for _ in range(3 if p[0] in ("01", "79") else 1)]
    params = {
        "n": n,
        "seed": seed,
        "olds": [p[0] for p in weighted],
        "news": [p[1] for p in weighted],
        "nprov": len(weighted),
        "icd": icd_codes,
    }
    # the usual bulk load: secondary indexes dropped while rows go in, built once at the end
    secondary = sorted(report_visit.indexes, key=lambda i: str(i.name))
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE report_visit"))
        for index in secondary:
            index.drop(conn, checkfirst=True)
    step = 1_000_000
    for first in range(1, n + 1, step):
        last = min(n, first + step - 1)
        with engine.begin() as conn:
            conn.execute(_FILL, {**params, "first": first, "last": last})
        if progress:
            progress(last)
    with engine.begin() as conn:
        for index in secondary:
            index.create(conn, checkfirst=True)
    ReportRepository(engine).rebuild_rollup()  # the province-month cells, as the hook keeps them
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE report_visit"))


def drop_visits(engine: Engine) -> None:
    """Remove every synthetic fact and its rollup and give the space back (TRUNCATE)."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE report_visit, report_visit_month"))

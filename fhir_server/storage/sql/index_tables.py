"""Search index tables: one typed table per search parameter type, keyed by the resource row's `rid`.

Every row carries (res_type, param) so one btree on (res_type, param, value...) serves the lookups of
all types; a second index on (rid, param) serves deletes on update, _include and sort-key subqueries.
Text columns use the "C" collation on PostgreSQL so prefix searches are plain index range scans.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, String, Table, Text

from fhir_server.storage.sql.schema import metadata

# Byte-order text on PostgreSQL (index range scans for prefixes); SQLite's default BINARY is the same.
CText = Text().with_variant(Text(collation="C"), "postgresql")
Param = String(100)
RType = String(64)


def _table(name: str, *columns: Column, rid_index: bool = True) -> Table:
    table = Table(
        name,
        metadata,
        Column("rid", BigInteger, nullable=False),
        Column("res_type", RType, nullable=False),
        Column("param", Param, nullable=False),
        *columns,
    )
    if rid_index:
        Index(f"ix_{name}_rid", table.c.rid, table.c.param)
    return table


sp_string = _table(
    "sp_string",
    Column("value", CText, nullable=False),
    Column("exact", Text, nullable=False),
    rid_index=False,
)
# Both string indexes cover a name search (issue 20): a prefix that few people share is gathered from
# the value index with its rids (index-only), one that many share ("nguyen") is found by walking rids
# in order until a page is full, checking type and value in the index (PostgreSQL INCLUDE).
Index("ix_sp_string_value_rid", sp_string.c.res_type, sp_string.c.param, sp_string.c.value, sp_string.c.rid)
Index(
    "ix_sp_string_rid_cover",
    sp_string.c.rid,
    sp_string.c.param,
    postgresql_include=["res_type", "value"],
)
# Indexes replaced by the ones above, dropped when the schema is created (migrate.py).
OBSOLETE_INDEXES = ("ix_sp_string_value", "ix_sp_string_rid")

sp_token = _table(
    "sp_token",
    Column("system", CText, nullable=True),
    Column("code", CText, nullable=True),
    Column("text", CText, nullable=True),
)
Index("ix_sp_token_code", sp_token.c.res_type, sp_token.c.param, sp_token.c.code, sp_token.c.system)

sp_reference = _table(
    "sp_reference",
    Column("target_type", RType, nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("url", CText, nullable=True),
)
Index(
    "ix_sp_reference_target",
    sp_reference.c.res_type,
    sp_reference.c.param,
    sp_reference.c.target_id,
    sp_reference.c.target_type,
)
Index("ix_sp_reference_url", sp_reference.c.res_type, sp_reference.c.param, sp_reference.c.url)

sp_date = _table(
    "sp_date", Column("lo", BigInteger, nullable=False), Column("hi", BigInteger, nullable=False)
)
Index("ix_sp_date_lo", sp_date.c.res_type, sp_date.c.param, sp_date.c.lo)
Index("ix_sp_date_hi", sp_date.c.res_type, sp_date.c.param, sp_date.c.hi)

sp_number = _table("sp_number", Column("value", Float, nullable=False))
Index("ix_sp_number_value", sp_number.c.res_type, sp_number.c.param, sp_number.c.value)

sp_quantity = _table(
    "sp_quantity",
    Column("system", CText, nullable=True),
    Column("code", CText, nullable=True),
    Column("unit", Text, nullable=True),
    Column("value", Float, nullable=False),
)
Index("ix_sp_quantity_value", sp_quantity.c.res_type, sp_quantity.c.param, sp_quantity.c.value)

sp_uri = _table("sp_uri", Column("value", CText, nullable=False))
Index("ix_sp_uri_value", sp_uri.c.res_type, sp_uri.c.param, sp_uri.c.value)

# Composite parameters (first component a token in every R4 definition, second of any type).
sp_composite = _table(
    "sp_composite",
    Column("system", CText, nullable=True),
    Column("code", CText, nullable=True),
    Column("v_system", CText, nullable=True),
    Column("v_code", CText, nullable=True),
    Column("v_num", Float, nullable=True),
    Column("v_lo", BigInteger, nullable=True),
    Column("v_hi", BigInteger, nullable=True),
)
Index("ix_sp_composite_code", sp_composite.c.res_type, sp_composite.c.param, sp_composite.c.code)

TABLES: dict[str, Table] = {
    "string": sp_string,
    "token": sp_token,
    "reference": sp_reference,
    "date": sp_date,
    "number": sp_number,
    "quantity": sp_quantity,
    "uri": sp_uri,
    "composite": sp_composite,
}
ALL_TABLES: list[Table] = list(TABLES.values())

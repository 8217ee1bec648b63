"""The profile's tables in the warehouse: what exists with which columns, and the feature
tables ``features`` and ``account_features`` (one row per organisation or account and day).

A day's rows of both feature tables are replaced in one transaction
(:func:`replace_features`); when the registry (:mod:`schemas.features`) changed their
columns, the tables are recreated, since features are derived data and earlier days
re-profile. :func:`read_features` is how the later stages read them.
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from pipeline.store.warehouse import replace_day


def table_columns(
    con: duckdb.DuckDBPyConnection, table: str, temporary: bool = False
) -> list[str] | None:
    """Column names of a table of the open database (or a temp table), None if absent."""
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() "
        "WHERE table_name = $t AND (database_name = 'temp') = $tmp AND schema_name = 'main' "
        "ORDER BY column_index",
        {"t": table, "tmp": temporary},
    ).fetchall()
    return [r[0] for r in rows] or None


def replace_features(
    con: duckdb.DuckDBPyConnection, frames: dict[str, pl.DataFrame], day: date
) -> None:
    """Replace ``day``'s rows of each table with its frame, all in one transaction."""
    for table, frame in frames.items():
        have = table_columns(con, table)
        if have is not None and have != frame.columns:
            # the registry changed: features are derived data, earlier days re-profile
            con.execute(f"DROP TABLE {table}")
            have = None
        if have is None:
            con.register("_shape", frame.head(0))
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM _shape")
            con.unregister("_shape")
    replace_day(con, day, frames)


def read_features(con: duckdb.DuckDBPyConnection, day: date, level: str = "org") -> pl.DataFrame:
    """The stored feature rows of ``day`` (empty frame when the day was not profiled)."""
    table = "features" if level == "org" else "account_features"
    if table_columns(con, table) is None:
        return pl.DataFrame()
    return con.sql(f"SELECT * FROM {table} WHERE day = $d", params={"d": day}).pl()

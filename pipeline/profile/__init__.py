"""Profiling: per organisation, account and day, features over trailing windows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.store.sql import SqlFolder

if TYPE_CHECKING:
    import duckdb

sql = SqlFolder(__file__)


def define_npd_checks(con: duckdb.DuckDBPyConnection) -> None:
    """Create the temp macro ``npd_checks`` (``npd_checks.sql``: the NPD agreement checks,
    the one definition of a breach) on ``con``, for the queries that call it."""
    con.execute(sql("npd_checks"))

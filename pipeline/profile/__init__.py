"""Profiling: per organisation, account and day, features over trailing windows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.store.sql import SqlFolder

if TYPE_CHECKING:
    import duckdb

sql = SqlFolder(__file__)


def define_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create on ``con`` the temp macros that hold the one definition of a concept, for the
    queries that call them: ``npd_checks`` (``npd_checks.sql``: the NPD agreement checks,
    what a breach is) and the ``lrs_is_*`` operation kinds (``lrs_operations.sql``: what
    counts as a search, a registration, a record read)."""
    con.execute(sql("npd_checks"))
    con.execute(sql("lrs_operations"))

"""Load the SQL files that live next to the code (one relation per file)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

SQL_DIR = Path(__file__).parent / "sql"


@cache
def sql(name: str) -> str:
    """The text of ``pipeline/sql/<name>.sql``."""
    return (SQL_DIR / f"{name}.sql").read_text()


def define_npd_checks(con: duckdb.DuckDBPyConnection) -> None:
    """Create the temp macro ``npd_checks`` (``npd_checks.sql``: the NPD agreement checks,
    the one definition of a breach) on ``con``, for the queries that call it."""
    con.execute(sql("npd_checks"))

"""Load the SQL files that live next to the code (one relation per file)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).parent / "sql"


@cache
def sql(name: str) -> str:
    """The text of ``pipeline/sql/<name>.sql``."""
    return (SQL_DIR / f"{name}.sql").read_text()

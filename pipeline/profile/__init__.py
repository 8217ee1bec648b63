"""Profiling: per organisation, account and day, features over trailing windows.

The stage by job: :mod:`~pipeline.profile.summaries` (the per-day summary tables and their
cache), :mod:`~pipeline.profile.peers` (peer groups, robust z-scores, change against the
own baseline), :mod:`~pipeline.profile.build` (a day's feature rows, ``build_profiles``),
:mod:`~pipeline.profile.store` (the feature tables in the warehouse) and
:mod:`~pipeline.profile.docs` (``docs/features.md``). This package holds the stage's SQL
(``sql/``) and how it runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

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


def _bind(query: str, pool: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``query`` names (``$name``), taken from ``pool``."""
    names = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", query))
    missing = names - pool.keys()
    if missing:
        raise KeyError(f"no value for SQL parameter(s) {sorted(missing)}")
    return {n: pool[n] for n in names}


def run_sql(con: duckdb.DuckDBPyConnection, name: str, pool: dict[str, Any]) -> None:
    """Run ``sql/<name>.sql`` on ``con`` with the parameters it names, taken from ``pool``."""
    q = sql(name)
    con.execute(q, _bind(q, pool))

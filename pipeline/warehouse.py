"""The DuckDB warehouse: one file per home holding reference data, the run ledger and,
features, scores, rule hits, reasons and suspects. Triage decisions are files, see
pipeline/triage.py.

DuckDB allows one writing process per file, so connections are opened briefly and closed;
computations that need no warehouse table run on polars frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

from schemas.detection import ReasonRow, RuleHitRow, ScoreRow, SuspectRow
from schemas.frames import duckdb_columns
from schemas.ingest import DeliveryReport
from schemas.reference import Agreement, Organisation
from schemas.settings import Settings

TABLES: dict[str, str] = {
    "ingest_ledger": duckdb_columns(DeliveryReport),
    "organisations": duckdb_columns(Organisation),
    "agreements": duckdb_columns(Agreement),
    # detection outputs (pipeline.rank); features and daily summaries are created by
    # pipeline.profile from its feature registry and SQL
    "scores": duckdb_columns(ScoreRow),
    "rule_hits": duckdb_columns(RuleHitRow),
    "reasons": duckdb_columns(ReasonRow),
    "suspects": duckdb_columns(SuspectRow),
    # the pseudonym key's fingerprint (never the key), recorded by the first LRS ingest
    # (pipeline.ingest.check_key): a later ingest with another key is refused
    "key_fingerprint": "fingerprint VARCHAR, run_id VARCHAR, recorded_at TIMESTAMPTZ",
}


def _config(settings: Settings) -> dict[str, str | bool | int | float | list[str]]:
    tmp = settings.home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "memory_limit": settings.duckdb_memory_limit,
        "threads": settings.duckdb_threads,
        "temp_directory": str(tmp),
        # Offline by rule: never download extensions at run time.
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }


def _quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """No progress bar: it would garble CLI output and logs (a session-only option)."""
    # Inside a Jupyter kernel DuckDB refuses to change the setting unless ipywidgets is
    # installed (duckdb/duckdb#7590); the bar is off by default there, so nothing is lost.
    # Remove the guard when DuckDB accepts turning an unused bar off.
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    return con


@contextlib.contextmanager
def connect(settings: Settings, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating its tables on first write) and close it afterwards."""
    settings.home.mkdir(parents=True, exist_ok=True)
    path: Path = settings.warehouse
    if read_only and not path.exists():
        read_only = False
    if not path.exists():
        # A new warehouse is a new identity (see pipeline.version.home_id).
        (settings.home / ".warehouse-id").unlink(missing_ok=True)
    con = _quiet(duckdb.connect(str(path), read_only=read_only, config=_config(settings)))
    try:
        if not read_only:
            for name, columns in TABLES.items():
                con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
        yield con
    finally:
        con.close()


def committed_runs(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT DISTINCT run_id FROM ingest_ledger WHERE status = 'committed'"
    ).fetchall()
    return {r[0] for r in rows}

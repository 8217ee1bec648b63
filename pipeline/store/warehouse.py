"""The DuckDB warehouse: one file per home holding reference data, the run ledger and,
features, scores, rule hits, reasons and suspects. Triage decisions are files, see
pipeline/triage/verdicts.py.

DuckDB allows one writing process per file, so connections are opened briefly and closed;
computations that need no warehouse table run on polars frames. A connection that meets
another process's lock on the file (a step of a running job writing, or readers while a
step wants to write) retries with backoff for a bounded time, then raises
:class:`WarehouseBusy` naming the holder: reads work while a backfill runs, and a read never
makes a job's step fail.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipeline.store.lake import (
    WRITER_LOCK,
    HomeBusy,
    holds_lock,
    home_lock,
    lake_dir,
    partition_dir,
    pending_commits,
)
from schemas.detection import DetectorScoreRow, ReasonRow, RuleHitRow, ScoreRow, SuspectRow
from schemas.frames import duckdb_columns, polars_schema
from schemas.ingest import DeliveryReport, DeliveryStatus
from schemas.reference import Agreement, Organisation
from schemas.settings import Settings

TABLES: dict[str, str] = {
    "ingest_ledger": duckdb_columns(DeliveryReport),
    "organisations": duckdb_columns(Organisation),
    "agreements": duckdb_columns(Agreement),
    # detection outputs (pipeline.rank.detect); features and daily summaries are created by
    # pipeline.profile (store.py, summaries.py) from the feature registry and its SQL.
    # Each model detector's part is one row of detector_scores (older warehouses had one
    # scores column per model: see _migrate_scores)
    "scores": duckdb_columns(ScoreRow),
    "detector_scores": duckdb_columns(DetectorScoreRow),
    "rule_hits": duckdb_columns(RuleHitRow),
    "reasons": duckdb_columns(ReasonRow),
    "suspects": duckdb_columns(SuspectRow),
    # the pseudonym key's fingerprint (never the key), recorded by the first LRS ingest
    # (pipeline.ingest.deliveries.check_key): a later ingest with another key is refused
    "key_fingerprint": "fingerprint VARCHAR, run_id VARCHAR, recorded_at TIMESTAMPTZ",
}


def _migrate_scores(con: duckdb.DuckDBPyConnection) -> None:
    """Move the per-model columns of an older ``scores`` table (``iforest``, ``ecod``: any
    column ``ScoreRow`` no longer has) into ``detector_scores`` rows and drop them, in one
    transaction. Nothing to do on a current warehouse."""
    wide = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'scores' "
            "AND database_name <> 'temp' ORDER BY column_index"
        ).fetchall()
        if r[0] not in ScoreRow.model_fields
    ]
    if not wide:
        return
    with transaction(con):
        for column in wide:
            con.execute(
                "INSERT INTO detector_scores BY NAME SELECT day, level, org_id, user_name, "
                f'$name AS detector, "{column}" AS score FROM scores',
                {"name": column},
            )
            con.execute(f'ALTER TABLE scores DROP COLUMN "{column}"')


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


READ_WAIT_SECONDS = 120.0
"""How long a read waits for a writing step to let go of the warehouse (a national day's
profile or detect holds it for about 20 s)."""
WRITE_WAIT_SECONDS = 600.0
"""How long a writing step waits for readers to close their connections."""


class WarehouseBusy(HomeBusy):
    """The warehouse stayed locked by another process for longer than the wait."""


class CommitPending(HomeBusy):
    """A commit is in flight (or was interrupted) and its writer lock is still held."""


def _is_lock_conflict(e: duckdb.Error) -> bool:
    text = str(e)
    return (
        "Could not set lock" in text
        or "Conflicting lock" in text
        or "different configuration" in text  # this process has it open the other way
    )


def _holder(e: duckdb.Error, home: Path) -> str:
    found = re.search(r"PID (\d+)", str(e))
    lock = home / WRITER_LOCK
    stamp = lock.read_text().strip() if lock.is_file() else ""
    if found and stamp.startswith(f"pid {found.group(1)} "):
        return stamp
    return f"pid {found.group(1)}" if found else (stamp or "another process")


def _open(settings: Settings, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retried with backoff while another process holds the file."""
    deadline = time.monotonic() + wait_seconds
    pause = 0.05
    while True:
        try:
            return duckdb.connect(
                str(settings.warehouse), read_only=read_only, config=_config(settings)
            )
        except (duckdb.IOException, duckdb.ConnectionException) as e:
            if not _is_lock_conflict(e):
                raise
            if time.monotonic() >= deadline:
                what = "read" if read_only else "write"
                raise WarehouseBusy(
                    f"{settings.warehouse} is busy: {_holder(e, settings.home)} has it open; "
                    f"could not {what} it within {wait_seconds:.0f} s, try again later"
                ) from None
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)


def ensure_consistent(settings: Settings, wait_seconds: float = READ_WAIT_SECONDS) -> None:
    """Before reading without the writer lock, make sure no commit is half done.

    Nothing to do when no commit journal is pending, or when this process holds the writer
    lock (its own step is the one committing or recovering). Otherwise: a live commit
    finishes in moments, so wait for its journal to go; or take the writer lock, which
    rolls back a dead writer's commit (see :func:`pipeline.store.lake.home_lock`). Raises
    :class:`CommitPending` when neither happens within ``wait_seconds``.
    """
    home = settings.home
    deadline = time.monotonic() + wait_seconds
    while pending_commits(home) and not holds_lock(home):
        try:
            with home_lock(home, 0.0, purpose="recover before reading"):
                return
        except HomeBusy as e:
            if time.monotonic() >= deadline:
                raise CommitPending(
                    f"{home} has a commit in flight or interrupted, so its lake is not "
                    f"consistent yet and nothing was read: {e}"
                ) from None
        time.sleep(0.2)


@contextlib.contextmanager
def connect(
    settings: Settings, read_only: bool = False, wait_seconds: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating its tables on first write) and close it afterwards.

    A read-only connection first makes sure no interrupted commit is pending
    (:func:`ensure_consistent`), so what it reads - and any lake file it reads next - was
    committed. Either kind waits up to ``wait_seconds`` (default :data:`READ_WAIT_SECONDS`
    or :data:`WRITE_WAIT_SECONDS`) for another process's lock on the file.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    path: Path = settings.warehouse
    if read_only and not path.exists():
        read_only = False
    if wait_seconds is None:
        wait_seconds = READ_WAIT_SECONDS if read_only else WRITE_WAIT_SECONDS
    if read_only:
        ensure_consistent(settings, wait_seconds)
    if not path.exists():
        # A new warehouse is a new identity (see pipeline.store.version.home_id).
        (settings.home / ".warehouse-id").unlink(missing_ok=True)
    con = _quiet(_open(settings, read_only, wait_seconds))
    try:
        if not read_only:
            for name, columns in TABLES.items():
                con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
            _migrate_scores(con)
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One all-or-nothing unit of work on ``con``: committed at the end, rolled back on any
    error (the error goes on)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


Rows = pl.DataFrame | str | None
"""A day's new rows for one table: a polars frame, the name of a (temp) table or view
holding them, or ``None`` for none."""


def replace_day(
    con: duckdb.DuckDBPyConnection,
    day: date,
    rows: Mapping[str, Rows],
    also: Sequence[tuple[str, dict[str, object]]] = (),
) -> None:
    """Replace ``day``'s rows of every table in ``rows`` (matched by column name), and run
    the statements of ``also``, in one transaction: a reader sees the old day or the new
    one, never a mix."""
    with transaction(con):
        for table, new in rows.items():
            con.execute(f"DELETE FROM {table} WHERE day = $d", {"d": day})
            if isinstance(new, str):
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {new}")
            elif new is not None and new.height:
                con.register("_replace_day_rows", new)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _replace_day_rows")
                con.unregister("_replace_day_rows")
        for statement, params in also:
            con.execute(statement, params)


def committed_runs(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT DISTINCT run_id FROM ingest_ledger WHERE status = 'committed'"
    ).fetchall()
    return {r[0] for r in rows}


def committed_run_ids(home: Path) -> set[str]:
    """Run ids with a committed ledger row, for recovery (no settings needed: the writer
    lock is held, so only readers can have the warehouse open)."""
    path = home / "warehouse.duckdb"
    if not path.exists():
        return set()
    deadline = time.monotonic() + READ_WAIT_SECONDS
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as e:
            if not _is_lock_conflict(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
    try:
        known = con.execute(
            "SELECT 1 FROM duckdb_tables() WHERE table_name = 'ingest_ledger'"
        ).fetchall()
        return committed_runs(con) if known else set()
    finally:
        con.close()


def day_has_data(con: duckdb.DuckDBPyConnection, home: Path, day: date) -> bool:
    """Whether ``day`` can be scored: the lake holds events of that day from some source,
    or a delivery of that day was committed (a quiet day: a valid delivery of 0 rows).

    A day with neither - a future day, or one whose every feed is missing - has nothing to
    score: its 1-day features would all be false zeros and its windows a copy of the day
    before, so it gets no ranked list (see docs/operations.md).
    """
    for source in ("lrs", "npd"):
        if lake_dir(home, source).is_dir() and any(
            partition_dir(home, source, day).glob("*.parquet")
        ):
            return True
    rows = con.execute(
        "SELECT 1 FROM ingest_ledger WHERE delivery_day = $d AND status = 'committed' LIMIT 1",
        {"d": day},
    ).fetchall()
    return bool(rows)


def ledger_frame(reports: list[DeliveryReport]) -> pl.DataFrame:
    """Delivery reports as rows of the ``ingest_ledger`` table."""
    rows = []
    for r in reports:
        row = r.model_dump(mode="python", exclude={"reconciles"})
        row["status"] = r.status.value
        row["quarantine_reasons"] = json.dumps(r.quarantine_reasons)
        rows.append(row)
    return pl.DataFrame(rows, schema=polars_schema(DeliveryReport), orient="row")


def record_missing(
    settings: Settings, source: str, days: list[date], run_id: str
) -> list[DeliveryReport]:
    """Ledger rows for the ``days`` of ``source`` whose delivery folder is absent.

    Call with the writer lock held. A day with a committed delivery is not missing (its
    folder may have been archived since); a day already recorded as missing is not recorded
    again, so the ledger has one ``missing`` row per source and day while it stays missing.
    Returns the report of every day still missing, new or recorded before.
    """
    absent = [d for d in days if not (settings.landing / source / d.isoformat()).is_dir()]
    if not absent:
        return []
    now = datetime.now(UTC)
    with connect(settings) as con:
        rows = con.execute(
            "SELECT delivery_day, status, run_id, started_at FROM ingest_ledger "
            "WHERE source = $s AND status IN ('committed', 'missing') AND delivery_day IN "
            "(SELECT unnest($d::DATE[]))",
            {"s": source, "d": absent},
        ).fetchall()
        committed = {r[0] for r in rows if r[1] == DeliveryStatus.committed.value}
        earlier = {r[0]: (r[2], r[3]) for r in rows if r[1] == DeliveryStatus.missing.value}
        out, new = [], []
        for day in absent:
            if day in committed:
                continue
            folder = f"{source}/{day.isoformat()}/"
            by_run, since = earlier.get(day, (run_id, now))
            report = DeliveryReport(
                run_id=by_run,
                source=source,
                delivery_day=day,
                source_file=folder,
                file_sha256="",
                status=DeliveryStatus.missing,
                rows_read=0,
                rows_written=0,
                duplicates=0,
                quarantined=0,
                late_events=0,
                reason=f"no delivery folder {settings.landing / folder}",
                started_at=since,
                finished_at=since,
            )
            out.append(report)
            if day not in earlier:
                new.append(report)
        if new:
            con.register("missing_rows", ledger_frame(new))
            con.execute("INSERT INTO ingest_ledger SELECT * FROM missing_rows")
            con.unregister("missing_rows")
    return out


def scorable(settings: Settings, day: date) -> bool:
    """:func:`day_has_data` on its own read-only connection."""
    if not settings.warehouse.exists():
        return False
    with connect(settings, read_only=True) as con:
        return day_has_data(con, settings.home, day)

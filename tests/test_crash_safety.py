"""A real ingest process killed at any point leaves the lake consistent, and a re-run
completes the job without duplicates (no fault injection: the process is SIGKILLed)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.ingest import recover_home
from pipeline.lake import home_lock, lake_glob
from schemas.settings import load_settings
from tests.conftest import LRS_COLUMNS, TEST_KEY

ROWS_PER_FILE = 120_000
DAYS = ("2026-03-02", "2026-03-03")


def _delivery(day: str, part: int) -> pl.DataFrame:
    n = ROWS_PER_FILE
    i = pl.int_range(0, n, eager=True)
    late = (i % 50) == 0  # every 50th event belongs to the day before
    frame = pl.DataFrame({"n": i}).select(
        event_id=pl.format("{}-{}-{}", pl.lit(day), pl.lit(part), pl.col("n"))
    )
    return frame.with_columns(
        occurred_at=pl.when(late)
        .then(pl.lit("2026-03-01T08:00:00Z"))
        .otherwise(pl.lit(f"{day}T10:00:00Z")),
        ukprn=pl.lit("10001234"),
        user_name=pl.format("user{}", i % 7),
        channel=pl.lit("webservice"),
        operation=pl.lit("learnerByULN"),
        uln=pl.lit("1026893096"),
        dob=pl.lit("2007-01-02"),
        postcode=pl.lit("LS6 2AB"),
        response_code=pl.lit("WSRC0004"),
        result_count=pl.lit("1"),
        batch_size=pl.lit(""),
        client_ip=pl.lit("10.1.2.3"),
        user_agent=pl.lit("MIS/1.0"),
    ).select(LRS_COLUMNS)


def _landing(root: Path) -> Path:
    for day in DAYS:
        folder = root / "lrs" / day
        folder.mkdir(parents=True)
        with gzip.open(folder / "part-1.csv.gz", "wb", compresslevel=1) as f:
            _delivery(day, 1).write_csv(f)
        _delivery(day, 2).write_ndjson(folder / "part-2.jsonl")
    return root


def _ingest_process(home: Path, landing: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY}
    args = ["ingest", "--source", "lrs", "--all", "--home", str(home), "--landing", str(landing)]
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _lake_ids(home: Path) -> pl.DataFrame:
    if not list(home.glob("lake/source=lrs/*/*.parquet")):
        return pl.DataFrame(schema={"event_id": pl.String, "delivery_day": pl.Date})
    return pl.read_parquet(lake_glob(home, "lrs"), hive_partitioning=True).select(
        "event_id", "delivery_day"
    )


def _committed_files(home: Path) -> list[tuple[str, str]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT source_file, status FROM ingest_ledger ORDER BY ALL").fetchall()


@pytest.mark.slow
def test_killed_ingests_leave_the_lake_consistent_and_a_rerun_completes(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing")
    clean_home = tmp_path / "clean"
    started = time.monotonic()
    assert _ingest_process(clean_home, landing).wait(timeout=600) == 0
    duration = time.monotonic() - started
    expected = _lake_ids(clean_home)
    assert expected.height == len(DAYS) * 2 * ROWS_PER_FILE
    home = tmp_path / "home"
    settings = load_settings(home=home, landing=landing, pseudonym_key=TEST_KEY)
    for fraction in (0.15, 0.35, 0.55, 0.75, 0.9):
        proc = _ingest_process(home, landing)
        time.sleep(duration * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        with home_lock(home):
            recover_home(settings)
        seen = _lake_ids(home)
        # Never a duplicate, never a row that should not be there, and every delivery day
        # in the lake is there whole (committed deliveries only).
        assert seen["event_id"].n_unique() == seen.height
        assert set(seen["event_id"]) <= set(expected["event_id"])
        for (day,), part in seen.group_by("delivery_day"):
            assert part.height == expected.filter(pl.col("delivery_day") == day).height
        assert not list(home.glob("staging/*")) and not list(home.glob("journal/*"))
    assert _ingest_process(home, landing).wait(timeout=600) == 0
    final = _lake_ids(home)
    assert final.sort("event_id").equals(expected.sort("event_id"))
    committed = [f for f, status in _committed_files(home) if status == "committed"]
    assert len(committed) == len(set(committed)) == len(DAYS) * 2

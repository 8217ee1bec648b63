"""A real ingest process killed at any point leaves the lake consistent, and a re-run
completes the job without duplicates (no fault injection: the process is SIGKILLed)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.ingest.deliveries import recover_home
from pipeline.store.lake import home_lock, lake_glob
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
        [sys.executable, "-m", "cli.app", *args],
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


# --- Every reader after a killed job ------------------------------------------------------

READ_DAY = "2026-08-11"
NEW_DAY = "2026-08-12"

_STALL_IN_COMMIT = """
import sys, time
import pipeline.ingest.deliveries as ingest
real = ingest.commit_files
def stalled(home, run_id, moves, finalise):
    def stall():
        print("moved", flush=True)
        time.sleep(600)
    real(home, run_id, moves, stall)
ingest.commit_files = stalled
from cli.app import app
app(sys.argv[1:])
"""


def _scored_home(root: Path, landing: Path) -> Path:
    from evaluation.run import run_landing

    home = root / "home"
    run_landing(load_settings(home=home, landing=landing, pseudonym_key=TEST_KEY))
    return home


def _events(home: Path) -> pl.DataFrame:
    """Every event id in the lake, both sources."""
    frames = [
        pl.read_parquet(files, columns=["event_id"])
        for source in ("lrs", "npd")
        if (files := [str(p) for p in home.glob(f"lake/source={source}/*/*.parquet")])
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema={"event_id": pl.String})


def _committed_rows(home: Path) -> int:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute(
            "SELECT coalesce(sum(rows_written), 0) FROM ingest_ledger "
            "WHERE status = 'committed' AND source IN ('lrs', 'npd')"
        ).fetchone()
    return int(row[0]) if row else 0


def _run_readers(home: Path, org: str, out: Path) -> list[tuple[str, int]]:
    """Every read command, in this process; each must succeed or refuse in one clear line."""
    from typer.testing import CliRunner

    from cli.app import app

    h = ["--home", str(home)]
    readers = [
        ("suspects", "--day", READ_DAY, *h),
        ("explain", org, "--day", READ_DAY, *h),
        ("report", "--day", READ_DAY, "--out", str(out / "report.html"), *h),
        ("evidence", org, "--day", READ_DAY, "--out", str(out / "pack"), *h),
        ("profile", "--day", READ_DAY, *h),
        ("detect", "--day", READ_DAY, *h),
    ]
    codes = []
    for args in readers:
        result = CliRunner().invoke(
            app, list(args), env={"ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY, "COLUMNS": "200"}
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args,
            result.exception,
        )
        assert "Traceback" not in result.output, (args, result.output)
        codes.append((args[0], result.exit_code))
    return codes


@pytest.mark.slow
def test_every_reader_after_a_killed_ingest_sees_only_committed_data(tmp_path: Path) -> None:
    """A scored home gets a new delivery day; its ingest is killed once inside the commit
    (files moved, ledger not written: the case where ``profile`` used to read 1,848
    uncommitted events) and at seeded random points. After each kill every reader
    succeeds, sees only what the ledger committed, and leaves no journal; the next
    ingest makes the lake exactly what a clean run makes."""
    import random
    import shutil

    from pipeline.rank.listing import suspects
    from tests.conftest import SAMPLE

    if not (SAMPLE / "landing").is_dir():
        pytest.skip("data/sample not generated")
    landing = tmp_path / "landing"
    shutil.copytree(SAMPLE / "landing" / "reference", landing / "reference")
    for source in ("lrs", "npd"):
        for day in ("2026-08-10", READ_DAY):
            shutil.copytree(SAMPLE / "landing" / source / day, landing / source / day)
    home = _scored_home(tmp_path / "run", landing)
    org = suspects(load_settings(home=home), date.fromisoformat(READ_DAY), top=1)[0].org_id
    shutil.copytree(SAMPLE / "landing" / "lrs" / NEW_DAY, landing / "lrs" / NEW_DAY)
    clean = _scored_home(tmp_path / "clean", landing)
    env = {**os.environ, "ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY}
    ingest_args = ["ingest", "--source", "lrs", "--all", "--home", str(home),
                   "--landing", str(landing)]  # fmt: skip
    began = time.monotonic()
    assert subprocess.run(  # how long one ingest of the whole landing takes here
        [sys.executable, "-m", "cli.app", *ingest_args[:-4], "--home", str(tmp_path / "x"),
         "--landing", str(landing)], env=env, capture_output=True,
    ).returncode == 0  # fmt: skip
    duration = time.monotonic() - began
    rng = random.Random(20261203)
    kills = ["in-commit", *(rng.uniform(0.3, 1.0) * duration for _ in range(3))]
    for i, when in enumerate(kills):
        if when == "in-commit":
            proc = subprocess.Popen(
                [sys.executable, "-c", _STALL_IN_COMMIT, *ingest_args],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            assert proc.stdout is not None and proc.stdout.readline().strip() == "moved"
            assert list(home.glob("journal/*.json")), "the kill is meant to land mid-commit"
        else:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli.app", *ingest_args],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(float(when))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        out = tmp_path / f"read-{i}"
        out.mkdir()
        codes = _run_readers(home, org, out)
        assert all(code == 0 for _, code in codes), (when, codes)
        assert not list(home.glob("journal/*.json"))
        seen = _events(home)
        assert seen.height == _committed_rows(home), f"lake and ledger disagree after {when}"
        assert seen["event_id"].n_unique() == seen.height
    assert subprocess.run([sys.executable, "-m", "cli.app", *ingest_args], env=env,
                          capture_output=True).returncode == 0  # fmt: skip
    assert _events(home).sort("event_id").equals(_events(clean).sort("event_id"))

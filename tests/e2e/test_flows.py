"""The backfill and nightly flows through the CLI and a real (temporary) Prefect server:
resumable after a kill, a failing day reported while the others complete, one run per home."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.store.lake import lake_glob, run_lock
from tests.conftest import SAMPLE, TEST_KEY, SampleRun
from tests.unit.cli.test_cli import ACCESSWATCH, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("prefect_api"),
    pytest.mark.skipif(not (SAMPLE / "landing").is_dir(), reason="data/sample not generated"),
]
KEY = {"ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY}
# Four days are enough for every claim here: each of the sample's deliveries carries late
# events, duplicates and quarantined rows; more days only add scoring time.
DAYS = ["2026-08-10", "2026-08-11", "2026-08-12", "2026-08-13"]


def small_landing(root: Path, days: list[str] = DAYS) -> Path:
    """The sample's reference data and its first few delivery days."""
    landing = root / "landing"
    shutil.copytree(SAMPLE / "landing" / "reference", landing / "reference")
    for source in ("lrs", "npd"):
        for day in days:
            src = SAMPLE / "landing" / source / day
            if src.is_dir():
                shutil.copytree(src, landing / source / day)
    return landing


def suspects_of(home: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT day, level, rank, org_id, user_name, round(score, 6) FROM suspects ORDER BY ALL"
        ).fetchall()


def assert_lake_clean(home: Path) -> None:
    """Every committed file once in the ledger, and no event twice in the lake."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        ledger = con.sql(
            "SELECT source_file, file_sha256, count(*) AS n FROM ingest_ledger "
            "WHERE status = 'committed' GROUP BY ALL"
        ).pl()
        written = con.execute(
            "SELECT sum(rows_written) FROM ingest_ledger WHERE source = 'lrs'"
        ).fetchone()
    assert ledger.height > 0 and (ledger["n"] == 1).all()
    lake = pl.read_parquet(lake_glob(home, "lrs"), hive_partitioning=True)
    assert lake["event_id"].n_unique() == lake.height
    assert written is not None and lake.height == written[0]


def test_a_killed_backfill_resumes_without_redoing_days_or_duplicating(tmp_path: Path) -> None:
    landing = small_landing(tmp_path)
    home = tmp_path / "home"
    args = ["backfill", "--home", str(home), "--landing", str(landing)]
    env = {**os.environ, **KEY, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [*ACCESSWATCH, *args], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    results = home / "prefect-results"
    deadline = time.monotonic() + 240
    try:
        # Kill it once some, not all, days are scored (each cached result is one file).
        while time.monotonic() < deadline and proc.poll() is None:
            scored = len(list(results.glob("*"))) if results.is_dir() else 0
            # 1 reference + at most 12 deliveries: at least two days scored, not all
            if scored >= 1 + 2 * len(DAYS) + 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the backfill finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    again = run(*args, env=KEY)
    assert again.returncode == 0, again.stderr
    table = again.stdout
    # days scored before the kill come back from the cache; the rest are done now
    assert "cached" in table and " done " in table
    assert f"{len(DAYS)} of {len(DAYS)} days done, 0 failed" in table
    assert_lake_clean(home)
    days = {r[0].isoformat() for r in suspects_of(home)}  # type: ignore[attr-defined]
    assert days == set(DAYS)
    # A third run has nothing left to do.
    third = run(*args, env=KEY)
    assert third.returncode == 0 and " done " not in third.stdout.replace("days done", "")


def test_a_failing_day_is_reported_the_others_complete_and_a_fix_redoes_only_it(
    tmp_path: Path,
) -> None:
    landing = small_landing(tmp_path)
    home = tmp_path / "home"
    bad_day = DAYS[2]
    original = sorted((landing / "lrs" / bad_day).iterdir())[0]
    kept = tmp_path / original.name
    shutil.move(original, kept)
    broken = original.with_name("broken.csv")
    broken.write_text("event_id,occurred_at\nx1,2026-08-12T10:00:00Z\n")  # columns missing
    args = ["backfill", "--home", str(home), "--landing", str(landing)]
    first = run(*args, env=KEY)
    assert first.returncode == 1, first.stderr
    assert f"{len(DAYS) - 1} of {len(DAYS)} days done, 1 failed" in first.stdout
    assert "broken.csv" in first.stdout and "missing" in first.stdout
    broken.unlink()
    shutil.move(kept, original)
    fixed = run(*args, env=KEY)
    assert fixed.returncode == 0, fixed.stderr
    rows = [line for line in fixed.stdout.splitlines() if line.startswith("│ 2026-")]
    ingest_state = {r.split("│")[1].strip(): r.split("│")[2].strip() for r in rows}
    assert ingest_state[bad_day] == "done"
    assert {d for d, s in ingest_state.items() if s == "cached"} == set(DAYS) - {bad_day}
    assert_lake_clean(home)


def test_a_second_run_on_a_busy_home_fails_fast_and_names_the_holder(tmp_path: Path) -> None:
    landing = small_landing(tmp_path, DAYS[:1])
    home = tmp_path / "home"
    with run_lock(home, purpose="backfill held by this test"):
        out = run("backfill", "--home", str(home), "--landing", str(landing), env=KEY)
    assert out.returncode == 2
    assert "holds its run lock" in out.stderr and "held by this test" in out.stderr
    assert not (home / "warehouse.duckdb").exists()


def test_nightly_on_a_finished_home_reuses_the_work_and_publishes(
    sample_home: SampleRun, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(sample_home.home, home)
    before = suspects_of(home)
    out = run(
        "nightly", "--day", "2026-09-20", "--home", str(home),
        "--landing", str(SAMPLE / "landing"), env=KEY,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "cached" in out.stdout and "1 of 1 days done" in out.stdout
    assert suspects_of(home) == before


def test_nightly_ingests_its_day_and_rescores_the_days_late_events_touched(
    tmp_path: Path,
) -> None:
    landing = small_landing(tmp_path)
    home = tmp_path / "home"
    common = ["--home", str(home), "--landing", str(landing)]
    first = run("backfill", "--end", DAYS[-2], *common, env=KEY)
    assert first.returncode == 0, first.stderr
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert (
            con.execute("SELECT count(*) FROM suspects WHERE day = ?", [DAYS[-1]]).fetchone()[0]
            == 0
        )  # type: ignore[index]
    nightly = run("nightly", "--day", DAYS[-1], *common, env=KEY)
    assert nightly.returncode == 0, nightly.stderr
    assert "re-scored: late events" in nightly.stdout
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        late = con.execute(
            "SELECT sum(late_events) FROM ingest_ledger WHERE delivery_day = ?", [DAYS[-1]]
        ).fetchone()
        scored = con.execute("SELECT count(*) FROM suspects WHERE day = ?", [DAYS[-1]]).fetchone()
    assert late is not None and late[0] > 0
    assert scored is not None and scored[0] > 0
    assert_lake_clean(home)


def _features_of(home: Path) -> pl.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql("SELECT * FROM features ORDER BY day, org_id").pl()


def test_a_backfill_scoring_while_it_ingests_matches_ingesting_everything_first(
    tmp_path: Path,
) -> None:
    """Days are scored while later deliveries are still coming in (here each day as soon as
    its own delivery is in); events delivered later (the sample's, and a file of events
    two days late) wind scoring back, so the result equals the plain serial run. Random
    orders of completion are covered in ``tests/unit/pipeline/plan/test_schedule.py``."""
    from pipeline.ingest.deliveries import ingest
    from pipeline.ingest.reference import load_reference
    from pipeline.plan.run import landing_days
    from pipeline.plan.serial import score_days
    from schemas.settings import load_settings

    landing = small_landing(tmp_path)
    source = next((landing / "lrs" / DAYS[1]).glob("*.jsonl.gz"))
    late = pl.read_ndjson(source, infer_schema_length=None).head(40)
    assert late.height == 40
    late = late.with_columns(pl.col("event_id") + "-very-late")
    late.write_ndjson(landing / "lrs" / DAYS[3] / "lrs_events_very_late.jsonl")
    home = tmp_path / "home"
    eager = {**KEY, "ACCESSWATCH_LATE_DELIVERY_DAYS": "0"}
    out = run("backfill", "--home", str(home), "--landing", str(landing), env=eager)
    assert out.returncode == 0, out.stderr
    assert f"{len(DAYS)} of {len(DAYS)} days done, 0 failed" in out.stdout
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        very_late = con.execute(
            "SELECT count(*) FROM read_parquet(?, hive_partitioning = true) "
            "WHERE event_id LIKE '%-very-late' AND delivery_day = ?",
            [lake_glob(home, "lrs"), DAYS[3]],
        ).fetchone()
    assert very_late == (40,)

    plain = tmp_path / "plain"
    serial = load_settings(home=plain, landing=landing, pseudonym_key=TEST_KEY)
    load_reference(serial)
    for source in ("lrs", "npd"):
        ingest(serial, source, None)  # every delivery first, then every day in order
    score_days(serial, landing_days(serial))
    expected = _features_of(plain)
    assert expected.height > 0
    got = _features_of(home)
    assert got.equals(expected), "features differ from the serial run"
    assert suspects_of(home) == suspects_of(plain)
    assert_lake_clean(home)

"""Issue 13's "done when": a landing folder shaped like a real feed runs end to end.

The world (``real_feed_config``) has header-only NPD files on quiet weekend days, NPD-only
organisations with an empty learner count, register rows with empty optional fields,
shuffled and extra columns, and callers missing from the register. Through the real CLI
and a real Prefect server: ``load-reference``, ``backfill``, ``nightly``, ``suspects`` and
``report`` all exit 0, every day is scored, the NPD-only organisations that called are
scored, and the callers missing from the register are ranked by REG-01 near the top.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from evaluation.generate import generate_world, real_feed_config
from tests.conftest import REPO, TEST_KEY

pytestmark = pytest.mark.slow


def _cli(*args: str, api: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY,
        "PREFECT_API_URL": api,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "cli.app", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def _ok(out: subprocess.CompletedProcess[str]) -> str:
    return f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


def test_a_real_feed_world_runs_end_to_end_every_day_scored_and_unknown_orgs_ranked(
    tmp_path: Path, prefect_api: str
) -> None:
    config = real_feed_config()
    generate_world(tmp_path / "world", config)
    landing, truth = tmp_path / "world" / "landing", tmp_path / "world" / "truth"
    home = tmp_path / "home"
    where = ("--home", str(home), "--landing", str(landing))
    days = [config.start + timedelta(i) for i in range(config.days)]

    # What makes the world real-feed shaped (so the test cannot pass on a tidy world).
    def lines(path: Path) -> int:
        data = path.read_bytes()
        return len((gzip.decompress(data) if path.name.endswith(".gz") else data).splitlines())

    header_only = [p for p in landing.glob("*/*/*.csv*") if lines(p) == 1]
    assert header_only, "the world has no quiet (header-only) day"
    with open(landing / "reference" / "organisations.csv", newline="") as f:
        register = list(csv.DictReader(f))
    assert any(not r["expected_learners"] for r in register)
    with open(truth / "labels.csv", newline="") as f:
        labels = list(csv.DictReader(f))
    unregistered = {r["org_id"] for r in labels if r["scenario"] == "unregistered_caller"}
    assert unregistered and not unregistered & {r["org_id"] for r in register}

    out = _cli("load-reference", *where, api=prefect_api)
    assert out.returncode == 0, _ok(out)
    out = _cli("backfill", *where, api=prefect_api)
    assert out.returncode == 0, _ok(out)
    assert "Traceback" not in out.stdout + out.stderr
    out = _cli("nightly", "--day", str(days[-1]), *where, api=prefect_api)
    assert out.returncode == 0, _ok(out)

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        ledger = con.execute(
            "SELECT status, count(*), sum(rows_read), "
            "sum(rows_written + duplicates + quarantined) FROM ingest_ledger GROUP BY ALL"
        ).fetchall()
        scored_days = {r[0] for r in con.execute("SELECT DISTINCT day FROM suspects").fetchall()}
        quiet = con.execute(
            "SELECT count(*) FROM ingest_ledger WHERE status = 'committed' AND rows_read = 0"
        ).fetchone()
        callers = con.execute(
            "SELECT DISTINCT org_id FROM scores WHERE day = ? AND level = 'org'", [days[-1]]
        ).fetchall()
    by_status = {r[0]: r for r in ledger}
    assert "refused" not in by_status, ledger
    assert by_status["committed"][2] == by_status["committed"][3], ledger  # reconciles
    assert quiet is not None and quiet[0] >= 1  # header-only files committed as 0 rows
    assert scored_days == set(days), sorted(set(days) - scored_days)
    scored = {r[0] for r in callers}
    assert unregistered <= scored
    npd_only = {r["org_id"] for r in register if not r["expected_learners"] and not r["ukprn"]}
    lake_npd = str(home / "lake" / "source=npd" / "*" / "*.parquet")
    with duckdb.connect() as con:
        npd_callers = {
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT org_id FROM read_parquet('{lake_npd}', hive_partitioning=true) "
                "WHERE event_date BETWEEN ? AND ?",
                [days[-1] - timedelta(6), days[-1]],
            ).fetchall()
        }
    # NPD-only orgs without a learner count are scored, not dropped.
    assert npd_only & npd_callers and npd_only & npd_callers <= scored

    last = str(days[-1])
    out = _cli(
        "suspects",
        "--day",
        last,
        "--top",
        "20",
        "--format",
        "json",
        "--home",
        str(home),
        api=prefect_api,
    )
    assert out.returncode == 0, _ok(out)
    rows = json.loads(out.stdout)
    ranked = {r["org_id"]: r for r in rows}
    for org in unregistered:
        assert org in ranked, (org, [r["org_id"] for r in rows])
        assert "REG-01" in ranked[org]["rules"]
        assert ranked[org]["rank"] <= 10
        assert ranked[org]["org_type"] == "unknown"

    report = tmp_path / "report.html"
    out = _cli("report", "--day", last, "--out", str(report), "--home", str(home), api=prefect_api)
    assert out.returncode == 0, _ok(out)
    html = report.read_text()
    assert all(org in html for org in unregistered)

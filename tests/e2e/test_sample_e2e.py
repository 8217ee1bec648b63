"""End to end through the CLI on the committed sample (data/sample/)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.store.lake import lake_glob
from tests.conftest import SAMPLE, TEST_KEY, SampleRun
from tests.unit.cli.test_cli import run

pytestmark = pytest.mark.skipif(
    not (SAMPLE / "landing").is_dir(), reason="data/sample not generated yet"
)


def test_the_committed_sample_is_what_its_readme_command_makes(tmp_path: Path) -> None:
    readme = (SAMPLE / "README.md").read_text()
    command = "generate --out data/sample --orgs 400 --days 42 --start 2026-08-10 --seed 7"
    flags = "--malformed-rate 0.002 --volume-scale 0.04 --scenario-scale 0.2"
    assert command in " ".join(readme.split()) and flags in " ".join(readme.split())
    args = [*command.replace("data/sample", str(tmp_path)).split(), *flags.split()]
    out = run(*args)
    assert out.returncode == 0, out.stderr
    committed = sorted(p.relative_to(SAMPLE) for p in SAMPLE.rglob("*") if p.is_file())
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert [p for p in committed if p.name != "README.md"] == made
    for rel in made:
        assert (SAMPLE / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_demo_ingests_the_whole_sample_and_every_count_reconciles(sample_home: SampleRun) -> None:
    home = sample_home.home
    args = ["--home", str(home), "--landing", str(SAMPLE / "landing")]
    out = sample_home
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        ledger = con.sql("SELECT * FROM ingest_ledger WHERE source IN ('lrs', 'npd')").pl()
        orgs = con.execute("SELECT count(*) FROM organisations").fetchone()
        ukprn_of = dict(con.execute("SELECT org_id, ukprn FROM organisations").fetchall())
    assert ledger.filter(pl.col("status") == "refused").height == 0
    assert (
        ledger["rows_read"] == ledger["rows_written"] + ledger["duplicates"] + ledger["quarantined"]
    ).all()
    lake = pl.read_parquet(lake_glob(home, "lrs"), hive_partitioning=True)
    assert lake.height == ledger.filter(pl.col("source") == "lrs")["rows_written"].sum()
    assert lake["event_id"].n_unique() == lake.height
    assert ledger["duplicates"].sum() > 0 and ledger["late_events"].sum() > 0
    quarantined = pl.read_parquet(str(home / "quarantine" / "**" / "*.parquet"))
    lrs_npd_q = quarantined.filter(pl.col("source").is_in(["lrs", "npd"]))
    assert lrs_npd_q.height == ledger["quarantined"].sum() > 0
    assert orgs is not None and orgs[0] > 100
    # Every labelled misuse organisation left a trace in the lake (LRS by ukprn, NPD by org).
    with open(SAMPLE / "truth" / "labels.csv") as f:
        labelled = {row["org_id"] for row in csv.DictReader(f)}
    npd = pl.read_parquet(lake_glob(home, "npd"), hive_partitioning=True)
    seen_ukprns = set(lake["ukprn"].unique())
    seen_npd_orgs = set(npd["org_id"].unique())
    missing = [o for o in labelled if ukprn_of.get(o) not in seen_ukprns and o not in seen_npd_orgs]
    assert labelled and not missing
    # The demo printed the ranked suspects; the list is there for every format and level.
    assert "Suspects on 2026-09-20" in out.stdout
    listed = run("suspects", "--day", "2026-09-20", "--top", "5", "--format", "json", *args[:2])
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(0 <= r["score"] <= 100 and r["reasons"] for r in rows)
    assert "NaN" not in listed.stdout and "nan" not in listed.stdout.lower().split()
    accounts = run(
        "suspects", "--day", "2026-09-20", "--by", "account", "--format", "csv", *args[:2]
    )
    assert accounts.returncode == 0 and accounts.stdout.startswith("rank,org_id")
    shown = run("explain", rows[0]["org_id"], "--day", "2026-09-20", *args[:2])
    assert shown.returncode == 0 and "features against peers" in shown.stdout
    missing = run("suspects", "--day", "2031-01-01", *args[:2])
    assert missing.returncode == 2 and "run detect first" in missing.stderr
    # A second run changes nothing: every delivery is skipped.
    again = run(
        "ingest", "--source", "lrs", "--all", *args, env={"ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY}
    )
    assert again.returncode == 0
    assert "committed" not in again.stdout and "skipped" in again.stdout

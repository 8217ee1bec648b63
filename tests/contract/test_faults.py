"""Faults and concurrency: a missing delivery is not a quiet one, readers never see a
commit that did not finish, reads work while a job writes, a day with no data gets no
ranked list, and a killed CLI leaves no Prefect server behind."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from cli.app import app
from evaluation.run import run_landing
from pipeline.rank.listing import suspects
from pipeline.store.lake import HomeBusy, lake_glob, partition_dir
from pipeline.store.warehouse import CommitPending, WarehouseBusy, connect, ensure_consistent
from schemas.settings import Settings, load_settings
from tests.conftest import NPD_COLUMNS, SAMPLE, TEST_KEY

pytestmark = pytest.mark.skipif(
    not (SAMPLE / "landing").is_dir(), reason="data/sample not generated"
)
KEY = {"ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY}
D1, D2, D3 = "2026-08-10", "2026-08-11", "2026-08-12"


def landing_of(root: Path, days: dict[str, tuple[str, ...]]) -> Path:
    """The sample's reference data and, per source, the given days."""
    landing = root / "landing"
    shutil.copytree(SAMPLE / "landing" / "reference", landing / "reference")
    for source, wanted in days.items():
        for day in wanted:
            shutil.copytree(SAMPLE / "landing" / source / day, landing / source / day)
    return landing


def ledger(home: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT source, delivery_day::VARCHAR, status, rows_written FROM ingest_ledger "
            "ORDER BY ALL"
        ).fetchall()


def cli(*args: str) -> tuple[int, str]:
    """The CLI in this process; (exit code, stdout + stderr). No exception may escape."""
    result = CliRunner().invoke(app, list(args), env={**KEY, "COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args} raised {result.exception!r}:\n{result.output}")
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Three sample days ingested and scored with no Prefect; lrs/D3 never delivered."""
    root = tmp_path_factory.mktemp("faults")
    landing = landing_of(root, {"lrs": (D1, D2), "npd": (D1, D2, D3)})
    s = load_settings(home=root / "home", landing=landing, pseudonym_key=TEST_KEY)
    run_landing(s)
    return s


@pytest.fixture
def home(scored: Settings, tmp_path: Path) -> Settings:
    """A private copy of the scored home."""
    shutil.copytree(scored.home, tmp_path / "home")
    return scored.model_copy(update={"home": tmp_path / "home"})


# --- Missing is not quiet -----------------------------------------------------------------


def test_a_missing_folder_is_one_ledger_row_and_the_day_is_still_scored(home: Settings) -> None:
    rows = ledger(home.home)
    assert ("lrs", D3, "missing", 0) in rows
    assert sum(1 for r in rows if r[2] == "missing") == 1  # npd has every day
    # scored from the NPD delivery and the days before
    assert suspects(home, date.fromisoformat(D3), top=5)
    # a re-run warns again and records nothing new
    code, out = cli("ingest", "--source", "lrs", "--all", "--home", str(home.home),
                    "--landing", str(home.landing))  # fmt: skip
    assert code == 0, out
    assert "missing" in out and f"WARNING: missing lrs {D3}" in out
    assert ledger(home.home) == rows


def test_a_committed_day_whose_folder_was_archived_is_not_missing(
    home: Settings, tmp_path: Path
) -> None:
    archived = tmp_path / "landing-archived"
    shutil.copytree(home.landing, archived)
    shutil.rmtree(archived / "lrs" / D1)
    moved = home.model_copy(update={"landing": archived})
    code, out = cli("ingest", "--source", "lrs", "--day", D1, "--home", str(moved.home),
                    "--landing", str(archived))  # fmt: skip
    assert code == 0, out
    assert ("lrs", D1, "missing", 0) not in ledger(moved.home)


# --- A day with no data -------------------------------------------------------------------


def test_a_day_with_no_data_gets_no_ranked_list(home: Settings) -> None:
    future = "2026-08-30"
    for command in ("profile", "detect"):
        code, out = cli(command, "--day", future, "--home", str(home.home))
        assert code == 0, out
        assert f"no events on {future}: nothing to score" in out
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        for table in ("scores", "suspects", "rule_hits", "reasons"):
            n = con.execute(f"SELECT count(*) FROM {table} WHERE day = ?", [future]).fetchone()
            assert n == (0,), table
        flagged = con.execute("SELECT max(first_flagged) FROM suspects").fetchone()
    assert flagged is not None and str(flagged[0]) <= D3
    code, out = cli("suspects", "--day", future, "--home", str(home.home))
    assert code == 2 and "Traceback" not in out


# --- Readers and a commit that did not finish ---------------------------------------------


def _dead_commit(s: Settings) -> Path:
    """What a process SIGKILLed after moving its files and before its ledger row leaves:
    a journal, and a lake file of extra events nothing committed."""
    folder = partition_dir(s.home, "lrs", date.fromisoformat(D2))
    first = sorted(folder.glob("*.parquet"))[0]
    ghost = folder / "part-ghost.parquet"
    frame = pl.read_parquet(first).with_columns(pl.col("event_id") + "-ghost")
    frame.write_parquet(ghost)
    journal = s.home / "journal"
    journal.mkdir(exist_ok=True)
    (journal / "ghost-run.json").write_text(
        json.dumps({"run_id": "ghost-run", "moves": [["/nowhere", str(ghost)]]})
    )
    return ghost


def _lake_events(s: Settings) -> int:
    return pl.scan_parquet(lake_glob(s.home, "lrs")).select(pl.len()).collect().item()


def test_every_reader_rolls_back_a_dead_commit_before_it_reads(home: Settings) -> None:
    clean = _lake_events(home)
    readers = [
        ("suspects", "--day", D2),
        ("explain", "ORG00001", "--day", D2),
        ("report", "--day", D2, "--out", str(home.home / "r.html")),
        ("evidence", "ORG00001", "--day", D2, "--out", str(home.home / "pack")),
        ("profile", "--day", D2),
        ("detect", "--day", D2),
    ]
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        before = con.sql(f"SELECT * FROM features WHERE day = '{D2}' ORDER BY org_id").pl()
    for args in readers:
        ghost = _dead_commit(home)
        code, out = cli(*args, "--home", str(home.home))
        assert code in (0, 2), (args, out)  # explain may not know ORG00001 in this world
        assert "Traceback" not in out
        assert not ghost.exists(), args  # rolled back before anything was read
        assert not list((home.home / "journal").glob("*.json"))
        assert _lake_events(home) == clean
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        after = con.sql(f"SELECT * FROM features WHERE day = '{D2}' ORDER BY org_id").pl()
    assert after.drop("computed_at", strict=False).equals(
        before.drop("computed_at", strict=False)
    ), "features were built from uncommitted files"


@pytest.fixture
def lock_holder(home: Settings) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the home's writer lock until its stdin closes."""
    code = (
        "import sys; from pathlib import Path; from pipeline.store.lake import home_lock\n"
        "with home_lock(Path(sys.argv[1]), purpose='nightly held by a test'):\n"
        "    print('held', flush=True); sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(home.home)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    try:
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def test_a_reader_refuses_clearly_while_a_commit_is_pending_under_a_held_lock(
    home: Settings, lock_holder: subprocess.Popen[str]
) -> None:
    ghost = _dead_commit(home)
    with pytest.raises(CommitPending, match=r"commit in flight or interrupted.*held by a test"):
        ensure_consistent(home, wait_seconds=0.5)
    assert ghost.exists()  # not ours to roll back while another process holds the lock


def test_profile_and_detect_name_the_holder_in_one_line_and_take_wait(
    home: Settings, lock_holder: subprocess.Popen[str]
) -> None:
    for command in ("profile", "detect"):
        code, out = cli(command, "--day", D2, "--home", str(home.home))
        assert code == 2, out
        assert "holds its writer lock" in out and "nightly held by a test" in out
        assert "Traceback" not in out and out.count("error:") == 1
    assert lock_holder.stdin is not None
    lock_holder.stdin.close()  # the holder ends: --wait gets the lock
    code, out = cli("detect", "--day", D2, "--wait", "30", "--home", str(home.home))
    assert code == 0, out


def test_a_read_waits_for_a_writer_holding_the_warehouse_then_reads(home: Settings) -> None:
    code = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True);"
        " time.sleep(float(sys.argv[2])); c.close()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(home.warehouse), "3"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    try:
        busy_read = connect(home, read_only=True, wait_seconds=0.3)
        with pytest.raises(WarehouseBusy, match=r"is busy: pid \d+ has it open") as busy:
            busy_read.__enter__()
        assert isinstance(busy.value, HomeBusy)
        began = time.monotonic()
        assert suspects(home, date.fromisoformat(D2), top=3)  # waits, then reads
        assert time.monotonic() - began < 30
    finally:
        holder.wait(timeout=30)


# --- Through the flows (a real Prefect server) --------------------------------------------


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    from tests.unit.cli.test_cli import run

    return run(*args, env={**KEY, **(env or {})})


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_flows_report_a_missing_delivery_score_the_day_and_skip_a_day_with_no_data(
    tmp_path: Path,
) -> None:
    landing = landing_of(tmp_path, {"lrs": (D1,), "npd": (D1, D2)})
    home = tmp_path / "home"
    common = ["--home", str(home), "--landing", str(landing)]
    out = _run("backfill", "--start", D1, "--end", D2, *common)
    assert out.returncode == 0, out.stderr
    assert "lrs delivery missing" in out.stdout
    assert "WARNING: 1 delivery(ies) missing" in out.stderr and f"lrs {D2}" in out.stderr
    assert "2 of 2 days done, 0 failed" in out.stdout
    assert ("lrs", D2, "missing", 0) in ledger(home)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        ranked = con.execute("SELECT count(*) FROM suspects WHERE day = ?", [D2]).fetchone()
    assert ranked is not None and ranked[0] > 0  # scored from NPD and the day before
    # The nightly of a day with no delivery at all (D3 has events: D2's deliveries carry
    # some of the next London day): warns, exits 0, ranks nothing.
    empty = "2026-08-14"
    night = _run("nightly", "--day", empty, *common)
    assert night.returncode == 0, night.stderr
    assert "WARNING: 2 delivery(ies) missing" in night.stderr
    assert "│ no data" in night.stdout  # the scoring column; the note says why
    assert {("lrs", empty, "missing", 0), ("npd", empty, "missing", 0)} <= set(ledger(home))
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        none = con.execute("SELECT count(*) FROM suspects WHERE day = ?", [empty]).fetchone()
    assert none == (0,)


def _header_only(path: Path, columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write(",".join(columns) + "\n")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_missing_and_quiet_deliveries_are_distinct(tmp_path: Path) -> None:
    """The contract: lrs/D absent is *missing*; npd/D header-only is *committed, 0 rows*;
    D is scored."""
    landing = landing_of(tmp_path, {"lrs": (D1,), "npd": (D1,)})
    _header_only(landing / "npd" / D2 / "npd_queries_quiet.csv.gz", NPD_COLUMNS)
    home = tmp_path / "home"
    out = _run("backfill", "--start", D1, "--end", D2, "--home", str(home),
               "--landing", str(landing))  # fmt: skip
    rows = ledger(home)
    assert ("lrs", D2, "missing", 0) in rows
    assert ("npd", D2, "committed", 0) in rows
    assert out.returncode == 0, out.stdout + out.stderr
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        ranked = con.execute("SELECT count(*) FROM suspects WHERE day = ?", [D2]).fetchone()
    assert ranked is not None and ranked[0] > 0


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_every_read_command_works_while_a_backfill_writes(tmp_path: Path) -> None:
    """Reads of a scored day, in a loop, while a backfill ingests and scores later days:
    none fails, and the backfill does not fail either."""
    days = ("2026-08-10", "2026-08-11", "2026-08-12", "2026-08-13", "2026-08-14", "2026-08-15")
    landing = landing_of(tmp_path, {"lrs": days, "npd": days})
    home = tmp_path / "home"
    common = ["--home", str(home), "--landing", str(landing)]
    first = _run("backfill", "--end", D1, *common)
    assert first.returncode == 0, first.stderr
    org = suspects(load_settings(home=home), date.fromisoformat(D1), top=1)[0].org_id
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.app", "backfill", *common],
        env={**os.environ, **KEY}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reads = [
        ("suspects", "--day", D1),
        ("explain", org, "--day", D1),
        ("report", "--day", D1, "--out", str(tmp_path / "r.html")),
        ("evidence", org, "--day", D1, "--out", str(tmp_path / "pack")),
    ]
    attempted, failed = 0, []
    try:
        while proc.poll() is None:
            for args in reads:
                shutil.rmtree(tmp_path / "pack", ignore_errors=True)
                (tmp_path / "pack.zip").unlink(missing_ok=True)
                code, out = cli(*args, "--home", str(home))
                attempted += 1
                if code != 0:
                    failed.append((args[0], out[-300:]))
    finally:
        stdout, stderr = proc.communicate(timeout=300)
    print(f"reads during the backfill: {attempted} attempted, {len(failed)} failed")
    assert proc.returncode == 0, stderr
    assert f"{len(days)} of {len(days)} days done, 0 failed" in stdout
    assert attempted >= 8
    assert not failed, failed


# --- No process left behind ---------------------------------------------------------------


def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append((int(entry.name), cmdline))
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_cli_leaves_no_temporary_prefect_server(tmp_path: Path, sig: int) -> None:
    landing = landing_of(tmp_path, {"lrs": (D1, D2), "npd": (D1, D2)})
    env = {**os.environ, **KEY, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)  # the CLI starts its own temporary server
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.app", "backfill", "--home", str(tmp_path / "home"),
         "--landing", str(landing)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server: tuple[int, str] | None = None
    deadline = time.monotonic() + 150
    try:
        while server is None and time.monotonic() < deadline and proc.poll() is None:
            server = next((c for c in _children(proc.pid) if "uvicorn" in c[1]), None)
            time.sleep(0.2)
        assert server is not None, "no temporary server was started"
        time.sleep(1.0)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        gone = time.monotonic() + 10
        while _alive(server[0]) and time.monotonic() < gone:
            time.sleep(0.1)
        port = server[1].split("--port ", 1)[1].split()[0]
        assert not _alive(server[0]), f"temporary server {server} outlived the CLI"
        survivors = [
            p.name
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _alive(int(p.name)) and f"--port {port} " in _cmdline(p)
        ]
        assert not survivors
    finally:
        if proc.poll() is None:
            proc.kill()
        if server is not None and _alive(server[0]):
            os.kill(server[0], signal.SIGKILL)


def _cmdline(p: Path) -> str:
    try:
        return (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_the_summary_artifact_lists_missing_deliveries_and_a_day_with_no_data() -> None:
    from flows.artifacts import summary_markdown
    from flows.backfill import finish, missing_lines
    from schemas.flows import DayOutcome, DayState, DaySummary, RunResult

    day = date.fromisoformat(D3)
    outcome = DayOutcome(
        day=day, ingest=DayState.missing, scoring=DayState.no_data, missing=["lrs", "npd"],
        summary=DaySummary(day=day, scored=False),
    )  # fmt: skip
    result = RunResult(flow="nightly", start=day, end=day, code_version="x", days=[outcome])
    lines = missing_lines(Path("/landing"), result)
    assert lines == [
        f"lrs {D3}: no delivery folder /landing/lrs/{D3}",
        f"npd {D3}: no delivery folder /landing/npd/{D3}",
    ]
    md = summary_markdown(result, DaySummary(day=day, scored=False), lines)
    assert "| missing deliveries | 2 (see below) |" in md
    assert "## Missing deliveries" in md and f"- lrs {D3}: no delivery folder" in md
    assert f"No events on {D3}: nothing to score" in md
    state = finish(result)
    assert state.is_completed()  # missing is reported, not a failure
    assert state.message == f"1 day(s) done; missing deliveries: lrs {D3}, npd {D3}"

"""The backfill on Dask gives what the single-process run gives, and really runs on Dask.

Two runs of ``accesswatch backfill`` on the committed sample, each in its own process:

- ``--dask-address`` of a real ``distributed.LocalCluster`` (two worker processes) started
  here, against the session's real Prefect server (``prefect_api``), which the CLI and the
  workers both report to. Without a shared server the CLI and each worker start a
  temporary server of their own; they race for ports and deliveries fail ("Timed out while
  attempting to connect to ephemeral Prefect API server"). It backfills the sample's first
  two weeks (``C_START`` to ``C_END``: late events, duplicates, quarantined LRS and NPD rows
  and a missing delivery) and is compared with the session's single-process
  ``sample_home`` of the whole sample restricted to what was delivered by ``C_END``: the
  events, quarantine and ledger of those deliveries, and the suspects of the days whose
  events had all arrived by then (``complete_days``).
- ``--workers 2`` (a local cluster that the CLI starts; no ``PREFECT_API_URL``, so the CLI
  shares its temporary server with its workers) over three days, compared with the same
  three days run with plain ``pipeline/`` calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import REPO, SAMPLE, TEST_KEY, SampleRun

LANDING = SAMPLE / "landing"
PROVENANCE = ["delivery_day", "source_file", "source_line"]
SUSPECTS = (
    "SELECT day, level, rank, org_id, user_name, round(score, 6) AS score "
    "FROM suspects ORDER BY ALL"
)
LEDGER = (
    "SELECT source, delivery_day, source_file, status, rows_read, rows_written, duplicates, "
    "quarantined, late_events FROM ingest_ledger ORDER BY ALL"
)
W2_START, W2_END = date(2026, 8, 10), date(2026, 8, 12)
C_START, C_END = date(2026, 8, 10), date(2026, 8, 23)
RUN_TIMEOUT = 900

# A Dask worker preload (distributed's "preload" setting): every task a worker finishes is
# appended to <AW_TASK_LOG_DIR>/worker-<pid>.log, so the tasks of a run can be traced to
# worker processes even when the cluster belongs to the CLI.
RECORD_TASKS = """
import os
from pathlib import Path

from distributed import WorkerPlugin


class RecordTasks(WorkerPlugin):
    def setup(self, worker):
        self.log = Path(os.environ["AW_TASK_LOG_DIR"]) / f"worker-{os.getpid()}.log"
        self.log.touch()

    def transition(self, key, start, finish, **kwargs):
        # executed here; a result fetched from the other worker (a task's input) also
        # ends in "memory", from "flight", and is not a run
        if start == "executing" and finish == "memory":
            with open(self.log, "a") as f:
                f.write(f"{key}\\n")


async def dask_setup(worker):
    await worker.plugin_add(RecordTasks(), name="accesswatch-test-record-tasks")
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LANDING.is_dir(), reason="data/sample not generated yet"),
]


@dataclass
class ClusterRun:
    """``backfill --dask-address`` of a cluster started by the test."""

    home: Path
    out: subprocess.CompletedProcess[str]
    tasks: dict[str, Counter[str]]  # worker address -> task name -> tasks finished there
    api_runs: dict[str, int]  # what the Prefect server recorded during the run
    seconds: dict[str, float]


def _count(api: str, what: str, body: Mapping[str, object] | None = None) -> int:
    """``POST /api/<what>/count`` on the Prefect server: how many runs match ``body``."""
    request = urllib.request.Request(
        f"{api}/{what}/count",
        data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(json.loads(response.read()))


def _api_runs(api: str) -> dict[str, int]:
    named = {p: {"task_runs": {"name": {"like_": p}}} for p in ("ingest-", "score-")}
    return {
        "flow runs": _count(api, "flow_runs"),
        **{f"{p}* task runs": _count(api, "task_runs", body) for p, body in named.items()},
    }


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY,
        "COLUMNS": "200",
        **extra,
    }


def _backfill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.app", "backfill", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cluster_run(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> ClusterRun:
    """A two-process LocalCluster here, and ``accesswatch backfill --dask-address`` on it."""
    from distributed import Client, LocalCluster, get_task_stream

    tmp = tmp_path_factory.mktemp("dask")
    # Worker processes are spawned with Nanny's env= on top of ours; set what tasks need.
    worker_env = {
        "ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY,
        "PREFECT_API_URL": prefect_api,
        "PREFECT_HOME": str(tmp / "prefect-workers"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
            env=worker_env,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        seconds["cluster start"] = time.perf_counter() - t0
        before = _api_runs(prefect_api)
        home = tmp / "home"
        t1 = time.perf_counter()
        with get_task_stream(client) as stream:
            out = _backfill(
                _env(PREFECT_API_URL=prefect_api), "--dask-address", cluster.scheduler_address,
                "--start", str(C_START), "--end", str(C_END),
                "--home", str(home), "--landing", str(LANDING),
            )  # fmt: skip
        seconds["backfill --dask-address"] = time.perf_counter() - t1
        after = _api_runs(prefect_api)
    seconds["cluster start, run and stop"] = time.perf_counter() - t0
    tasks: dict[str, Counter[str]] = {}
    for record in stream.data:
        key = record["key"]
        name = (key if isinstance(key, str) else str(key[0])).rsplit("-", 1)[0]
        tasks.setdefault(record["worker"], Counter())[name] += 1
    api_runs = {k: after[k] - before[k] for k in after}
    return ClusterRun(home, out, tasks, api_runs, seconds)


def _ok(out: subprocess.CompletedProcess[str]) -> str:
    return f"exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"


def _suspects(home: Path, days: set[date] | None = None) -> pl.DataFrame:
    """The suspects of ``home``; of ``days`` only if given."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        frame = con.sql(SUSPECTS).pl()
    return frame if days is None else frame.filter(pl.col("day").is_in(sorted(days)))


def _delivered_by(frame: pl.DataFrame, end: date | None) -> pl.DataFrame:
    return frame if end is None else frame.filter(pl.col("delivery_day") <= end)


def _ledger(home: Path, end: date | None = None) -> pl.DataFrame:
    """The ingest ledger of ``home``; if ``end`` is given, of the reference data (dated the
    day it was loaded) and the deliveries up to ``end``."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        frame = con.sql(LEDGER).pl()
    if end is None:
        return frame
    return frame.filter((pl.col("source") == "reference") | (pl.col("delivery_day") <= end))


def _lake(home: Path, source: str, end: date | None = None) -> pl.DataFrame:
    """The lake of ``home``; the events of deliveries up to ``end`` only if given."""
    glob = str(home / "lake" / f"source={source}" / "*" / "*.parquet")
    return _delivered_by(pl.read_parquet(glob, hive_partitioning=True), end).sort("event_id")


def _quarantine(home: Path, end: date | None = None) -> pl.DataFrame:
    frame = _delivered_by(pl.read_parquet(str(home / "quarantine" / "**" / "*.parquet")), end)
    return frame.sort(frame.columns)


def complete_days(home: Path, end: date) -> set[date]:
    """The days of ``home``'s suspects whose events (and every earlier day's) had all been
    delivered by ``end``: a backfill that stops at ``end`` scores them on the same data."""
    first_missed = min(
        _lake(home, source).filter(pl.col("delivery_day") > end)["event_date"].min()  # type: ignore[type-var]
        for source in ("lrs", "npd")
    )
    days = set(_suspects(home)["day"])
    return {d for d in days if d < first_missed}  # type: ignore[operator]


def _deliveries(start: date | None = None, end: date | None = None) -> int:
    """Delivery folders (LRS and NPD) of the sample in ``[start, end]``."""
    days = [date.fromisoformat(p.name) for s in ("lrs", "npd") for p in (LANDING / s).iterdir()]
    return sum(1 for d in days if (start is None or d >= start) and (end is None or d <= end))


def _sample_days(start: date, end: date) -> int:
    """Days of the sample in ``[start, end]`` with a delivery folder (LRS or NPD)."""
    days = {date.fromisoformat(p.name) for s in ("lrs", "npd") for p in (LANDING / s).iterdir()}
    return sum(1 for d in days if start <= d <= end)


def test_a_backfill_on_an_existing_cluster_runs_every_task_on_its_workers(
    cluster_run: ClusterRun,
) -> None:
    run = cluster_run
    print("seconds:", {k: round(v, 1) for k, v in run.seconds.items()})
    assert run.out.returncode == 0, _ok(run.out)
    days = _sample_days(C_START, C_END)
    assert f"{days} of {days} days done, 0 failed" in run.out.stdout
    done = Counter[str]()
    for counts in run.tasks.values():
        done.update(counts)
    n = _deliveries(C_START, C_END)
    assert done == {"stage": n, "commit": n, "score_day": days}, run.tasks
    ingesting = [w for w, counts in run.tasks.items() if counts["stage"]]
    assert len(ingesting) == 2, run.tasks  # deliveries were spread over both processes
    # The workers reported to the shared server (not to temporary servers of their own):
    # accesswatch-backfill and its accesswatch-process-days, and every task of both kinds.
    assert run.api_runs == {
        "flow runs": 2,
        "ingest-* task runs": n,
        "score-* task runs": days,
    }


def test_a_backfill_on_an_existing_cluster_ranks_the_same_suspects_as_one_process(
    cluster_run: ClusterRun, sample_home: SampleRun
) -> None:
    assert cluster_run.out.returncode == 0, _ok(cluster_run.out)
    days = complete_days(sample_home.home, C_END)
    assert len(days) >= 7, sorted(days)  # at least a week of days compared
    expected = _suspects(sample_home.home, days)
    assert expected.height > 0
    got = _suspects(cluster_run.home)
    assert set(got["day"]) == {C_START + timedelta(i) for i in range((C_END - C_START).days + 1)}
    assert_frame_equal(_suspects(cluster_run.home, days), expected)


def test_a_backfill_on_an_existing_cluster_writes_the_same_events_and_quarantine(
    cluster_run: ClusterRun, sample_home: SampleRun
) -> None:
    assert cluster_run.out.returncode == 0, _ok(cluster_run.out)
    for source in ("lrs", "npd"):
        expected = _lake(sample_home.home, source, C_END)
        assert expected.height > 0
        got = _lake(cluster_run.home, source)
        assert_frame_equal(got.drop(PROVENANCE), expected.drop(PROVENANCE))
    expected = _quarantine(sample_home.home, C_END)
    assert set(expected["source"]) == {"lrs", "npd"}  # both sources quarantine rows by then
    assert_frame_equal(_quarantine(cluster_run.home), expected)


def test_a_backfill_on_an_existing_cluster_keeps_the_first_delivered_copy_of_an_event(
    cluster_run: ClusterRun, sample_home: SampleRun
) -> None:
    assert cluster_run.out.returncode == 0, _ok(cluster_run.out)
    for source in ("lrs", "npd"):
        expected = _lake(sample_home.home, source, C_END)
        assert_frame_equal(_lake(cluster_run.home, source), expected)
    expected = _ledger(sample_home.home, C_END)
    # deliveries of events already delivered, and a missing delivery, are in the range
    assert expected["duplicates"].sum() > 0 and "missing" in set(expected["status"])
    assert_frame_equal(_ledger(cluster_run.home), expected)


def test_a_backfill_on_a_local_cluster_of_two_workers_matches_plain_calls(
    tmp_path: Path,
) -> None:
    from pipeline.ingest.deliveries import ingest
    from pipeline.ingest.reference import load_reference
    from pipeline.plan.serial import score_days
    from schemas.settings import load_settings

    log_dir = tmp_path / "task-logs"
    log_dir.mkdir()
    preload = tmp_path / "record_tasks.py"
    preload.write_text(RECORD_TASKS)
    env = _env(
        PREFECT_HOME=str(tmp_path / "prefect"),
        AW_TASK_LOG_DIR=str(log_dir),
        DASK_DISTRIBUTED__WORKER__PRELOAD=json.dumps([str(preload)]),
    )
    env.pop("PREFECT_API_URL", None)  # the CLI's temporary server, shared with its workers
    home = tmp_path / "w2-home"
    t0 = time.perf_counter()
    out = _backfill(
        env, "--workers", "2", "--start", str(W2_START), "--end", str(W2_END),
        "--home", str(home), "--landing", str(LANDING),
    )  # fmt: skip
    print(f"seconds: backfill --workers 2 of 3 days {time.perf_counter() - t0:.1f}")
    assert out.returncode == 0, _ok(out)
    days = [W2_START + timedelta(i) for i in range((W2_END - W2_START).days + 1)]
    assert f"{len(days)} of {len(days)} days done, 0 failed" in out.stdout
    tasks = {
        log.stem: Counter(key.rsplit("-", 1)[0] for key in log.read_text().split())
        for log in log_dir.glob("worker-*.log")
    }
    done = Counter[str]()
    for counts in tasks.values():
        done.update(counts)
    n = _deliveries(W2_START, W2_END)
    assert done == {"stage": n, "commit": n, "score_day": 3}, tasks
    assert len(tasks) == 2 and all(tasks.values()), tasks  # two worker processes, both busy

    # The same days through plain pipeline/ calls, in this process.
    direct = load_settings(home=tmp_path / "direct", landing=LANDING, pseudonym_key=TEST_KEY)
    load_reference(direct)
    for source in ("lrs", "npd"):
        ingest(direct, source, days)
    score_days(direct, days)
    assert_frame_equal(_suspects(home), _suspects(direct.home))
    for source in ("lrs", "npd"):
        expected = _lake(direct.home, source)
        assert_frame_equal(_lake(home, source).drop(PROVENANCE), expected.drop(PROVENANCE))

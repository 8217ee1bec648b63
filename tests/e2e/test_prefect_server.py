"""The deployments against a real Prefect server, as an operator runs them.

``prefect server start`` and ``accesswatch serve`` run as separate processes; runs are
triggered through the API and their states and artifacts are read back through it, as the
Prefect UI shows them. Then ``prefect deploy --all`` registers ``prefect.yaml``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.artifacts import NIGHTLY_SUMMARY_KEY, TOP_SUSPECTS_KEY
from flows.deploy import BACKFILL_DEPLOYMENT, NIGHTLY_DEPLOYMENT
from schemas.settings import Settings
from tests.conftest import REPO, SAMPLE, TEST_KEY

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SAMPLE / "landing").is_dir(), reason="data/sample not generated"),
]

BIN = Path(sys.executable).parent
NIGHTLY = f"accesswatch-nightly/{NIGHTLY_DEPLOYMENT}"
BACKFILL = f"accesswatch-backfill/{BACKFILL_DEPLOYMENT}"
CRON, TIMEZONE = "30 2 * * *", "Europe/London"  # the documented defaults
POOL = "accesswatch-pool"
GOOD_DAY = date(2026, 9, 19)  # LRS and NPD deliveries in the sample
BAD_DAY = date(2026, 9, 20)  # LRS only; one of its files is broken below
BROKEN = "lrs_events_20260920_part03.csv"
RUN_TIMEOUT = 150
TABLE_COLUMNS = {
    "rank", "org_id", "org_name", "org_type", "score", "rules", "top_reason",
    "first_flagged", "triage_status",
}  # fmt: skip


# --- processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def small_landing(root: Path) -> Path:
    """The sample's reference data and its last three delivery days."""
    landing = root / "landing"
    shutil.copytree(SAMPLE / "landing" / "reference", landing / "reference")
    for source in ("lrs", "npd"):
        for day in ("2026-09-18", "2026-09-19", "2026-09-20"):
            src = SAMPLE / "landing" / source / day
            if src.is_dir():
                shutil.copytree(src, landing / source / day)
    return landing


def base_env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """This environment without any Prefect or accesswatch setting, plus the private ones."""
    drop = ("PREFECT_", "ACCESSWATCH_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        COLUMNS="200",
        **extra,
    )
    return env


class Processes:
    """Processes started in their own sessions, so that each is stopped with its children."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        with (self.logs / f"{name}.log").open("wb") as out:
            proc = subprocess.Popen(
                args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.running.append(proc)

    def check(self) -> None:
        for p in self.running:
            if p.poll() is not None:
                pytest.fail(f"{p.args[:4]} exited with {p.returncode}\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        logs = sorted(self.logs.glob("*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in logs)

    def stop(self, grace: float = 10) -> None:
        """SIGTERM to each process group, SIGKILL to whatever is left after ``grace``."""
        for p in reversed(self.running):
            with _quiet():
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in reversed(self.running):
            with _quiet():
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            with _quiet():  # also children that outlived their leader
                os.killpg(p.pid, signal.SIGKILL)
            with _quiet():
                p.wait(timeout=10)
        self.running.clear()

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """Poll ``check()`` until it returns something truthy; fail early if a process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                value = check()
            except Exception:
                value = None
            if value:
                return value
            time.sleep(0.5)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{self.tail()}")


def _quiet() -> suppress:
    return suppress(ProcessLookupError, subprocess.TimeoutExpired)


@dataclass(frozen=True)
class Server:
    api_url: str
    root: Path
    procs: Processes


@dataclass(frozen=True)
class Served:
    server: Server
    home: Path
    landing: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``prefect server start`` on a free port, with its own PREFECT_HOME (SQLite)."""
    root = tmp_path_factory.mktemp("prefect-server")
    (root / "logs").mkdir()
    procs = Processes(root / "logs")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    try:
        procs.start("server", [*args, "--no-ui"], base_env(root / "server-home"), cwd=root)
        procs.wait_for(
            "GET /api/health",
            lambda: httpx.get(f"{api_url}/health", timeout=2).status_code == 200,
            timeout=120,
        )
        yield Server(api_url, root, procs)
    finally:
        procs.stop()


@contextmanager
def api(server: Server) -> Iterator[SyncPrefectClient]:
    """The Prefect client of this process, pointed at the test's server."""
    settings = temporary_settings(updates={PREFECT_API_URL: server.api_url})
    with settings, get_client(sync_client=True) as client:
        yield client


def run_and_wait(server: Server, name: str, **parameters: object) -> FlowRun:
    """Trigger a deployment through the API and wait for its run to finish."""
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        flow_run = run_deployment(
            name, parameters=parameters, timeout=RUN_TIMEOUT, poll_interval=1, as_subflow=False
        )
    assert flow_run.state is not None
    assert flow_run.state.is_final(), f"{name} still {flow_run.state.name}\n{server.procs.tail()}"
    return flow_run


def artifacts_of(server: Server, flow_run: FlowRun) -> dict[str, Any]:
    """The run's artifacts by key (table data decoded from JSON)."""
    keys = [TOP_SUSPECTS_KEY, NIGHTLY_SUMMARY_KEY]
    with api(server) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=keys),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]),
            )
        )
    out: dict[str, Any] = {}
    for a in found:
        assert a.key not in out, f"two {a.key} artifacts in one run"
        out[str(a.key)] = json.loads(a.data) if a.type == "table" else a.data
    return out


def ledger(home: Path, day: date) -> list[tuple[str, str, str]]:
    """(file name, status, run id) of each LRS delivery of ``day``, in order."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT source_file, status, run_id FROM ingest_ledger "
            "WHERE source = 'lrs' AND delivery_day = $d ORDER BY finished_at, source_file",
            {"d": day},
        ).fetchall()
    return [(Path(f).name, str(s), str(r)) for f, s, r in rows]


def events_in(markdown: str) -> int:
    found = re.search(r"\| events in \| ([\d,]+) \|", markdown)
    assert found, markdown
    return int(found.group(1).replace(",", ""))


# --- accesswatch serve -----------------------------------------------------------------


@pytest.fixture(scope="class")
def served(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``accesswatch serve`` against the server on a fresh home, stopped after the class
    (before prefect.yaml redeploys the same deployment names to a work pool)."""
    root = server.root / "served"
    work = tmp_path_factory.mktemp("served")
    home, landing = (work / "home").resolve(), small_landing(work).resolve()
    env = base_env(
        root / "prefect-home",
        PREFECT_API_URL=server.api_url,
        PREFECT_RUNNER_POLL_FREQUENCY="1",  # pick runs up within a second, not ten
        PREFECT_LOGGING_LEVEL="INFO",
        ACCESSWATCH_PSEUDONYM_KEY=TEST_KEY,
    )
    paths = ["--home", str(home), "--landing", str(landing)]
    procs = Processes(server.procs.logs)
    try:
        root.mkdir()
        procs.start("serve", [str(BIN / "accesswatch"), "serve", *paths], env, cwd=root)

        def both_registered() -> bool:
            with api(server) as client:
                names = {d.name for d in client.read_deployments()}
            return {NIGHTLY_DEPLOYMENT, BACKFILL_DEPLOYMENT} <= names

        procs.wait_for("serve to register both deployments", both_registered, timeout=90)
        yield Served(server, home, landing)
    finally:
        procs.stop()


class TestServe:
    """``accesswatch serve`` registers both deployments and runs what the server asks."""

    def test_the_nightly_is_scheduled_at_0230_london_time_one_run_at_a_time(
        self, served: Served
    ) -> None:
        with api(served.server) as client:
            nightly = client.read_deployment_by_name(NIGHTLY)
            backfill = client.read_deployment_by_name(BACKFILL)
        assert len(nightly.schedules) == 1
        schedule = nightly.schedules[0]
        assert schedule.active
        assert getattr(schedule.schedule, "cron", None) == CRON
        assert getattr(schedule.schedule, "timezone", None) == TIMEZONE
        assert nightly.entrypoint and nightly.entrypoint.endswith("flows/nightly.py:nightly")
        assert backfill.schedules == []  # run on demand only
        for d in (nightly, backfill):
            assert d.global_concurrency_limit is not None
            assert d.global_concurrency_limit.limit == 1
            assert d.parameters == {"home": str(served.home), "landing": str(served.landing)}

    def test_a_nightly_run_completes_and_publishes_the_suspects_and_a_summary(
        self, served: Served
    ) -> None:
        flow_run = run_and_wait(served.server, NIGHTLY, run_date=GOOD_DAY.isoformat())
        assert flow_run.state is not None
        assert flow_run.state.type is StateType.COMPLETED, (
            f"{flow_run.state.message}\n{served.server.procs.tail()}"
        )
        assert flow_run.parameters["run_date"] == GOOD_DAY.isoformat()
        found = artifacts_of(served.server, flow_run)
        assert set(found) == {TOP_SUSPECTS_KEY, NIGHTLY_SUMMARY_KEY}

        table = found[TOP_SUSPECTS_KEY]
        assert len(table) == 25  # `top` is 25 and the sample has 400 organisations
        assert all(set(row) == TABLE_COLUMNS for row in table)
        assert [row["rank"] for row in table] == list(range(1, 26))
        scores = [row["score"] for row in table]
        assert all(0 <= s <= 100 for s in scores) and scores == sorted(scores, reverse=True)
        assert all(date.fromisoformat(row["first_flagged"]) <= GOOD_DAY for row in table)
        assert table[0]["rules"] and table[0]["top_reason"]
        with duckdb.connect(str(served.home / "warehouse.duckdb"), read_only=True) as con:
            ranked = con.execute(
                "SELECT org_id FROM suspects WHERE day = $d AND level = 'org' ORDER BY rank "
                "LIMIT 25",
                {"d": GOOD_DAY},
            ).fetchall()
        assert [row["org_id"] for row in table] == [r[0] for r in ranked]

        summary = found[NIGHTLY_SUMMARY_KEY]
        assert summary.startswith(f"# accesswatch nightly: {GOOD_DAY}\n")
        assert events_in(summary) > 0
        assert "| refused deliveries | 0 |" in summary
        assert "| suspects in the ranked list | 25 |" in summary
        assert "Missing deliveries" not in summary  # both LRS and NPD came that day
        # the nightly wrote the day's HTML report into the home and linked it
        report = served.home / "reports" / f"{GOOD_DAY}.html"
        assert report.is_file() and report.as_uri() in summary

    def test_a_refused_delivery_fails_the_nightly_naming_the_file_and_a_rerun_redoes_only_it(
        self, served: Served
    ) -> None:
        folder = served.landing / "lrs" / BAD_DAY.isoformat()
        original = (folder / BROKEN).read_text()
        with (folder / BROKEN).open("w", newline="") as f:  # the feed dropped a column
            rows = list(csv.DictReader(io.StringIO(original, newline="")))
            columns = [c for c in rows[0] if c != "operation"]
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

        failed = run_and_wait(served.server, NIGHTLY, run_date=BAD_DAY.isoformat())
        assert failed.state is not None and failed.state.type is StateType.FAILED
        message = failed.state.message or ""
        assert "1 day(s) failed" in message and str(BAD_DAY) in message, message
        assert BROKEN in message and "missing required column(s): operation" in message, message
        found = artifacts_of(served.server, failed)
        assert found[TOP_SUSPECTS_KEY] == []  # the day was not scored
        summary = found[NIGHTLY_SUMMARY_KEY]
        assert "## Refused deliveries" in summary and BROKEN in summary
        assert "## Failed days" in summary and "not scored: its delivery failed" in summary
        assert "Missing deliveries" in summary and f"npd {BAD_DAY}: no delivery folder" in summary
        first = ledger(served.home, BAD_DAY)
        assert sorted(status for _f, status, _r in first) == ["committed"] * 5 + ["refused"]
        assert [f for f, status, _r in first if status == "refused"] == [BROKEN]

        (folder / BROKEN).write_text(original)  # the feed is fixed
        fixed = run_and_wait(served.server, NIGHTLY, run_date=BAD_DAY.isoformat())
        assert fixed.state is not None and fixed.state.type is StateType.COMPLETED, (
            f"{fixed.state.message}\n{served.server.procs.tail()}"
        )
        again = ledger(served.home, BAD_DAY)
        assert again[: len(first)] == first  # the other five files were not ingested again
        assert [(f, s) for f, s, _r in again[len(first) :]] == [(BROKEN, "committed")]
        table = artifacts_of(served.server, fixed)[TOP_SUSPECTS_KEY]
        assert len(table) == 25 and all(0 <= row["score"] <= 100 for row in table)


# --- prefect.yaml and a process work pool ----------------------------------------------


def test_prefect_yaml_names_what_serve_deploys() -> None:
    """prefect.yaml and flows/deploy.py describe the same two deployments."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert set(by_name) == {NIGHTLY_DEPLOYMENT, BACKFILL_DEPLOYMENT}
    nightly, backfill = by_name[NIGHTLY_DEPLOYMENT], by_name[BACKFILL_DEPLOYMENT]
    assert nightly["entrypoint"] == "flows/nightly.py:nightly"
    assert backfill["entrypoint"] == "flows/backfill.py:backfill"
    assert nightly["schedules"] == [{"cron": CRON, "timezone": TIMEZONE, "active": True}]
    assert "schedules" not in backfill
    for d in (nightly, backfill):
        assert d["work_pool"]["name"] == POOL
        assert d["concurrency_limit"] == 1
        assert d["parameters"] == {
            "home": "{{ $ACCESSWATCH_HOME }}",
            "landing": "{{ $ACCESSWATCH_LANDING }}",
        }
    # Nothing is fetched: the worker changes to this checkout and runs its code.
    steps = [next(iter(step)) for step in spec["pull"]]
    assert steps == ["prefect.deployments.steps.set_working_directory"]
    defaults = Settings.model_fields
    assert defaults["nightly_cron"].default == CRON and defaults["timezone"].default == TIMEZONE


def test_prefect_yaml_deploys_both_flows_to_the_process_work_pool(
    server: Server, tmp_path: Path
) -> None:
    """`prefect work-pool create` and `prefect deploy --all` from the repository, as
    docs/operations.md says; then the deployments as the server stores them.

    (Run after TestServe: the deployment names are the same, so this replaces them.)
    """
    home, landing = tmp_path / "home", tmp_path / "landing"
    env = base_env(tmp_path / "prefect-home", PREFECT_API_URL=server.api_url)

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "prefect"), "--no-prompt", *args], env={**env, **extra}, cwd=REPO,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    pool = cli("work-pool", "create", POOL, "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    paths = {"ACCESSWATCH_HOME": str(home), "ACCESSWATCH_LANDING": str(landing)}
    deployed = cli("deploy", "--all", **paths)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    with api(server) as client:
        nightly = client.read_deployment_by_name(NIGHTLY)
        backfill = client.read_deployment_by_name(BACKFILL)
    for d in (nightly, backfill):
        assert d.work_pool_name == POOL
        assert d.parameters == {"home": str(home), "landing": str(landing)}  # from the env
        [step] = d.pull_steps or [{}]  # one step: change to this checkout
        directory = step.get("prefect.deployments.steps.set_working_directory", {})
        assert Path(directory.get("directory", "")).resolve() == REPO, d.pull_steps
        limit = d.global_concurrency_limit
        assert limit is not None and limit.limit == 1
    assert nightly.entrypoint == "flows/nightly.py:nightly"
    assert backfill.entrypoint == "flows/backfill.py:backfill"
    assert len(nightly.schedules) == 1 and backfill.schedules == []
    schedule = nightly.schedules[0].schedule
    assert getattr(schedule, "cron", None) == CRON
    assert getattr(schedule, "timezone", None) == TIMEZONE

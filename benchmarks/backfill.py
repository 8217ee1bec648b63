"""Benchmark: `accesswatch backfill` end to end at national scale, over 10 and 30 days.

Generates a world of --days national days (12,600 organisations, about 2 M LRS events a
weekday; the same generator settings as benchmarks/detect.py) into --out, or reuses it when
one with the same parameters is there. Then, each in a fresh home and its own child
process, measured the same way:

- `accesswatch backfill --start D1 --end Dn` over the first --short days and over all
  --days days (once per --workers value; 1 = everything in the CLI process);
- the baseline: the same pipeline/ functions called directly, with no Prefect, on the
  same days and in the flow's own schedule (``pipeline.plan.schedule.Schedule`` on three plain
  threads: stage, commit (prepared before the lock, as the flow's task does), score);
  with ``--direct serial`` (or ``both``) also the plain serial order (load_reference,
  ingest every delivery, then score_days).

Flow runs report to a Prefect server that the benchmark starts once (its start-up is not
timed; its memory is counted), or to PREFECT_API_URL when set; with --prefect temporary,
each backfill starts Prefect's temporary server, as `accesswatch backfill` does when no API
URL is set (start-up timed). Memory is the whole process tree (the CLI, the Prefect server,
Dask workers):
/proc is sampled every 0.5 s, and the peak of the summed RSS (and PSS, which counts shared
pages once) is reported; "largest process" is the exact peak of the biggest single process
(wait4). Prefect overhead per day is (flow wall time - direct wall time) / days; the
marginal figure, ((flow - direct) at --days minus at --short) / (--days - --short),
leaves out fixed costs such as the temporary server's start-up.

Targets (the issue): 30 days in <= 15 min on 2 cores; peak RSS <= 4 GB, and flat in the
number of days (10 vs 30); Prefect overhead <= 1 s per day.

    python benchmarks/backfill.py                          # 30 national days (about 1-2 h)
    python benchmarks/backfill.py --workers 1 2            # also with a 2-process Dask cluster
    python benchmarks/backfill.py --orgs 400 --days 4 --short 2   # a quick check
    python benchmarks/backfill.py --skip-generate          # the world must exist already

Prints a table and writes the figures to <out>/backfill-results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
KEY = "benchmark-key-not-secret-0123456789"
SAMPLE_SECONDS = 0.5
TARGET_MINUTES_30_DAYS = 15.0
TARGET_PEAK_GB = 4.0
TARGET_OVERHEAD_S_PER_DAY = 1.0

GENERATE = """
import json, sys, time
from datetime import date
from pathlib import Path
from evaluation.generate import generate_world
from schemas.generate import WorldConfig
out = Path(sys.argv[1])
config = WorldConfig(orgs=int(sys.argv[2]), days=int(sys.argv[3]),
                     start=date.fromisoformat(sys.argv[4]), seed=int(sys.argv[5]))
began = time.perf_counter()
def progress(done, total):
    print(f"  generated {done}/{total} days, {time.perf_counter() - began:,.0f} s", flush=True)
summary = generate_world(out, config, progress=progress)
print(json.dumps(summary.model_dump(mode="json", exclude={"out"})))
"""

SERIAL = """
import json, sys, time
from datetime import date, timedelta
from pathlib import Path
from pipeline.ingest.deliveries import ingest
from pipeline.ingest.reference import load_reference
from pipeline.plan.serial import score_days
from schemas.settings import load_settings
home, landing = Path(sys.argv[1]), Path(sys.argv[2])
start, n = date.fromisoformat(sys.argv[3]), int(sys.argv[4])
days = [start + timedelta(i) for i in range(n)]
s = load_settings(home=home, landing=landing)
t = {"start": time.perf_counter()}
load_reference(s)
for source in ("lrs", "npd"):
    present = [d for d in days if (landing / source / d.isoformat()).is_dir()]
    ingest(s, source, present)
t["ingested"] = time.perf_counter()
marks = []
score_days(s, days, progress=lambda day, i, total: marks.append(time.perf_counter()))
t["scored"] = time.perf_counter()
print(json.dumps({
    "ingest_seconds": t["ingested"] - t["start"],
    "score_seconds": t["scored"] - t["ingested"],
    "score_seconds_per_day": [round(b - a, 2) for a, b in zip([t["ingested"], *marks], marks)],
}))
"""


OVERLAP = """
import json, sys, time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import date, timedelta
from pathlib import Path
from pipeline.plan.schedule import Schedule
from pipeline.ingest.deliveries import commit_delivery, new_run_id, prepare_delivery, stage_delivery
from pipeline.store.lake import home_lock
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import detect
from pipeline.ingest.reference import load_reference
from pipeline.outputs.summary import day_summary
from schemas.settings import load_settings
home, landing = Path(sys.argv[1]), Path(sys.argv[2])
start, n = date.fromisoformat(sys.argv[3]), int(sys.argv[4])
days = [start + timedelta(i) for i in range(n)]
s = load_settings(home=home, landing=landing)
began = time.perf_counter()
load_reference(s)
pending = [(src, d) for d in days for src in ("lrs", "npd") if (landing / src / str(d)).is_dir()]
plan = Schedule(days[0], days[-1], days[0], s.late_delivery_days, unfinished=set(pending))
run_id = new_run_id()
def commit(staged):
    staged = prepare_delivery(s, staged)
    with home_lock(s.home, 3600, purpose="commit"):
        return commit_delivery(s, staged)
def score(day):
    build_profiles(s, day, lock_wait_seconds=3600)
    detect(s, day, lock_wait_seconds=3600)
    with home_lock(s.home, 3600, purpose="summary"):
        return day_summary(s, day)
running, staged, scorings = {}, {}, 0
with ThreadPoolExecutor(3) as pool:  # the flow's three lanes: stage, commit, score
    while True:
        if pending and all(lane != "stage" for lane, _ in running.values()):
            src, d = pending.pop(0)
            job = pool.submit(stage_delivery, s, src, d, f"{run_id}-{src}-{d:%Y%m%d}")
            running[job] = ("stage", (src, d))
        if (k := plan.next_commit()) is not None:
            running[pool.submit(commit, staged.pop(k))] = ("commit", k)
        if (d := plan.next_score()) is not None:
            running[pool.submit(score, d)] = ("score", d)
            scorings += 1
        if not running:
            break
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for job in finished:
            lane, what = running.pop(job)
            value = job.result()
            if lane == "stage":
                staged[what] = value
                plan.staged.add(what)
            elif lane == "commit":
                plan.delivery_done(what, value.event_dates)
            else:
                plan.day_scored()
print(json.dumps({"seconds": time.perf_counter() - began, "scorings": scorings}))
"""

# Prefect's own cost per task, apart from the work: no-op tasks with the flows' task options
# (retries, a cache key, persisted results) on the flows' task runner, after a warm-up flow.
ENGINE = """
import json, os, resource, sys, time, uuid
from prefect import flow, task
from flows.work import task_runner

tag = uuid.uuid4().hex

@task(retries=2, retry_delay_seconds=1, persist_result=True,
      cache_key_fn=lambda ctx, p: f"engine-{tag}-{p['i']}")
def noop(i):
    return {"i": i, "files": [f"part-{j}.parquet" for j in range(20)]}

@flow(task_runner=task_runner())
def tasks(n):
    for f in [noop.submit(i) for i in range(n)]:
        f.result()

n = int(sys.argv[1])
tasks(10)
r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
tasks(n)
r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
print(json.dumps({"tasks": n, "wall_ms_per_task": 1000 * (w1 - w0) / n,
                  "cpu_ms_per_task": 1000 * cpu / n}))
"""
TASKS_PER_DAY = 5  # stage and commit for LRS and NPD, and one scoring


@dataclass
class Tree:
    """Peak memory of a process tree, from samples of /proc."""

    peak_rss_mb: float = 0.0
    peak_pss_mb: float = 0.0
    peak_by_role_mb: dict[str, float] = field(default_factory=dict)
    max_processes: int = 0
    samples: int = 0
    series: list[tuple[float, float]] = field(default_factory=list)  # (s, tree RSS MB)


@dataclass
class Run:
    label: str
    kind: str  # flow | direct
    days: int
    workers: int | None
    seconds: float
    returncode: int
    largest_process_mb: float  # exact (wait4): the biggest single process of the tree
    tree: Tree
    cpu_seconds: float = 0.0  # user + system of the tree (and of a shared Prefect server)
    load_average: tuple[float, float] = (0.0, 0.0)  # 1-minute load before and after
    events_read: int = 0
    events_written: int = 0
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events_read / self.seconds if self.seconds else 0.0


def _role(proc: psutil.Process, root: int, shared: list[int]) -> str:
    if proc.pid == root:
        return "main"
    if any(parent.pid in shared for parent in proc.parents()):
        return "prefect server"
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    if "uvicorn" in cmd or "prefect.server" in cmd or "prefect server" in cmd:
        return "prefect server"
    if "multiprocessing" in cmd or "spawn_main" in cmd or "distributed" in cmd:
        return "dask worker"
    return "other"


def _tree(pid: int) -> list[psutil.Process]:
    try:
        top = psutil.Process(pid)
        return [top, *top.children(recursive=True)]
    except psutil.Error:
        return []


def _sample(root: int, shared: list[int], tree: Tree, stop: threading.Event, began: float) -> None:
    roles: dict[int, str] = {pid: "prefect server" for pid in shared}
    last_series = -1e9
    while not stop.is_set():
        procs = _tree(root)
        if not procs:
            break
        procs += [p for pid in shared for p in _tree(pid)]
        rss = pss = 0.0
        by_role: dict[str, float] = {}
        for p in procs:
            try:
                full = p.memory_full_info()
            except psutil.Error:
                continue
            role = roles.setdefault(p.pid, _role(p, root, shared))
            rss += full.rss
            pss += full.pss
            by_role[role] = by_role.get(role, 0.0) + full.rss
        mb = 1024 * 1024
        tree.samples += 1
        tree.max_processes = max(tree.max_processes, len(procs))
        tree.peak_rss_mb = max(tree.peak_rss_mb, rss / mb)
        tree.peak_pss_mb = max(tree.peak_pss_mb, pss / mb)
        for role, value in by_role.items():
            tree.peak_by_role_mb[role] = max(tree.peak_by_role_mb.get(role, 0.0), value / mb)
        now = time.perf_counter() - began
        if now - last_series >= 5:
            tree.series.append((round(now, 1), round(rss / mb)))
            last_series = now
        stop.wait(SAMPLE_SECONDS)


@dataclass
class Measured:
    seconds: float
    returncode: int
    largest_process_mb: float
    tree: Tree
    cpu_seconds: float
    load_average: tuple[float, float]
    stdout: str
    shared_cpu_seconds: float = 0.0  # of which: the shared Prefect server


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for proc in (p for pid in pids for p in _tree(pid)):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def measure_tree(
    cmd: list[str], env: dict[str, str], log: Path, shared: list[int] | None = None
) -> Measured:
    """Run ``cmd``: wall time, exit code, largest single process, tree peaks, CPU, stdout.

    ``shared``: processes outside the tree that serve it (a Prefect server), sampled too.
    """
    shared = shared or []
    tree = Tree()
    load_before = os.getloadavg()[0]
    shared_cpu = _cpu(shared)
    stop = threading.Event()
    with open(log, "w") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=err)
        sampler = threading.Thread(target=_sample, args=(proc.pid, shared or [], tree, stop, began))
        sampler.start()
        assert proc.stdout is not None
        out = proc.stdout.read().decode(errors="replace")  # until the child closes it
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - began
        stop.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    server_cpu = _cpu(shared) - shared_cpu
    cpu = usage.ru_utime + usage.ru_stime + server_cpu
    loads = (round(load_before, 2), round(os.getloadavg()[0], 2))
    return Measured(
        seconds, proc.returncode, usage.ru_maxrss / 1024, tree, cpu, loads, out, server_cpu
    )


def _env(prefect_home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ACCESSWATCH_PSEUDONYM_KEY": KEY,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "COLUMNS": "160",
        # the checkout this script is in, even when another is installed in the venv
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).strip(
            os.pathsep
        ),
    }


def _ledger_events(home: Path) -> tuple[int, int]:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute(
            "SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_written), 0) "
            "FROM ingest_ledger WHERE source IN ('lrs', 'npd') AND status = 'committed'"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _suspects(home: Path) -> list[tuple[object, ...]]:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT day, level, rank, org_id, user_name, round(score, 6) FROM suspects ORDER BY ALL"
        ).fetchall()


def _score_marks(home: Path, days: int) -> list[float]:
    """Seconds between consecutive score-task results of a flow run (from their mtimes).

    Scoring runs after every ingest, one day at a time, and each score task persists its
    result under <home>/prefect-results when it ends: the last ``days`` result files are
    the score tasks, in day order.
    """
    results = home / "prefect-results"
    stamps = sorted(p.stat().st_mtime for p in results.iterdir() if p.is_file())
    scored = stamps[-(days + 1) :]
    return [round(b - a, 2) for a, b in itertools.pairwise(scored)]


def world_for(out: Path, orgs: int, days: int, start: date, seed: int, skip: bool) -> Path:
    """The generated world with these parameters: reused when present, else generated."""
    params = {"orgs": orgs, "days": days, "start": start.isoformat(), "seed": seed}
    world = out / f"world-{orgs}orgs-{days}d-{start.isoformat()}-seed{seed}"
    marker = world / "bench-world.json"
    if marker.is_file() and json.loads(marker.read_text()).get("params") == params:
        print(f"world: reusing {world}")
        return world
    if skip:
        raise SystemExit(f"--skip-generate: no world with {params} at {world}")
    shutil.rmtree(world, ignore_errors=True)
    print(f"world: generating {params} into {world}", flush=True)
    began = time.perf_counter()
    cmd = [sys.executable, "-c", GENERATE, str(world), str(orgs), str(days), str(start), str(seed)]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(out / "prefect"), stdout=subprocess.PIPE,
                          text=True, check=True)  # fmt: skip
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    seconds = time.perf_counter() - began
    size = sum(p.stat().st_size for p in (world / "landing").rglob("*") if p.is_file())
    marker.write_text(
        json.dumps(
            {"params": params, "summary": summary, "seconds": round(seconds, 1),
             "landing_bytes": size}, indent=2,
        )
    )  # fmt: skip
    print(
        f"world: {summary['lrs_events']:,} LRS + {summary['npd_events']:,} NPD events, "
        f"{size / 1e9:.1f} GB of deliveries, generated in {seconds / 60:.1f} min",
        flush=True,
    )
    return world


@dataclass
class PrefectApi:
    """Where the flow runs report: a server started here, one given, or a temporary one."""

    mode: str  # server | existing | temporary
    url: str | None = None
    pids: list[int] = field(default_factory=list)  # a server started here (sampled too)
    start_seconds: float = 0.0

    def env(self, env: dict[str, str]) -> dict[str, str]:
        env = dict(env)
        if self.url:
            env["PREFECT_API_URL"] = self.url
        else:
            env.pop("PREFECT_API_URL", None)
            # Prefect's default (20 s) is too short for a busy 2-core machine.
            env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        return env


@contextlib.contextmanager
def prefect_api(mode: str, out: Path) -> Iterator[PrefectApi]:
    """``prefect server start`` on a free port (own PREFECT_HOME) for the whole benchmark."""
    if os.environ.get("PREFECT_API_URL") and mode == "server":
        yield PrefectApi("existing", os.environ["PREFECT_API_URL"])
        return
    if mode == "temporary":
        yield PrefectApi("temporary")
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = out / "prefect-server"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    prefect = str(Path(sys.executable).with_name("prefect"))
    began = time.perf_counter()
    with open(home / "server.log", "wb") as log:
        server = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
            env=_env(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - began > 300:
                    log_path = home / "server.log"
                    raise SystemExit(f"prefect server did not start; see {log_path}") from None
                time.sleep(0.5)
        api = PrefectApi("server", url, [server.pid], time.perf_counter() - began)
        print(f"prefect server: {url}, up in {api.start_seconds:.0f} s", flush=True)
        yield api
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and children
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def run_flow(
    landing: Path, work: Path, start: date, days: int, workers: int, keep: bool, api: PrefectApi
) -> Run:
    label = f"backfill {days} days" + (f", --workers {workers}" if workers > 1 else "")
    home = work / f"home-flow-{days}d-w{workers}"
    shutil.rmtree(home, ignore_errors=True)
    end = start + timedelta(days - 1)
    cmd = [sys.executable, "-m", "cli.app", "backfill", "--start", str(start), "--end",
           str(end), "--home", str(home), "--landing", str(landing)]  # fmt: skip
    if workers > 1:
        cmd += ["--workers", str(workers)]
    with tempfile.TemporaryDirectory(prefix="aw-bench-prefect-") as prefect_home:
        env = api.env(_env(Path(prefect_home)))
        print(f"{label}: running", flush=True)
        m = measure_tree(cmd, env, work / f"{home.name}.log", api.pids)
    run = _run(label, "flow", days, workers, m)
    run.detail["prefect_server_cpu_seconds"] = round(m.shared_cpu_seconds, 1)
    out = m.stdout
    if run.returncode == 0:
        run.events_read, run.events_written = _ledger_events(home)
        run.detail["score_seconds_per_day"] = _score_marks(home, days)
        run.detail["summary_line"] = out.strip().splitlines()[-1]
        run.detail["suspects"] = len(_suspects(home))
    else:
        print(out[-3000:])
    _done(run, home, keep)
    return run


def run_direct(
    landing: Path, work: Path, start: date, days: int, keep: bool, how: str = "overlap"
) -> Run:
    label = f"direct calls {days} days" + (", serial" if how == "serial" else "")
    home = work / f"home-direct-{how}-{days}d"
    shutil.rmtree(home, ignore_errors=True)
    script = SERIAL if how == "serial" else OVERLAP
    cmd = [sys.executable, "-c", script, str(home), str(landing), str(start), str(days)]
    with tempfile.TemporaryDirectory(prefix="aw-bench-prefect-") as prefect_home:
        print(f"{label}: running", flush=True)
        m = measure_tree(cmd, _env(Path(prefect_home)), work / f"{home.name}.log")
    run = _run(label, "direct" if how == "overlap" else "serial", days, None, m)
    out = m.stdout
    if run.returncode == 0:
        run.events_read, run.events_written = _ledger_events(home)
        run.detail.update(json.loads(out.strip().splitlines()[-1]))
        run.detail["suspects"] = len(_suspects(home))
    _done(run, home, keep)
    return run


def run_engine(api: PrefectApi, tasks: int = 300) -> dict[str, float]:
    """Wall and CPU milliseconds per no-op task in the flow process (server CPU apart)."""
    with tempfile.TemporaryDirectory(prefix="aw-bench-prefect-") as prefect_home:
        env = api.env(_env(Path(prefect_home)))
        print(f"Prefect engine, {tasks} no-op tasks: running", flush=True)
        out = subprocess.run(
            [sys.executable, "-c", ENGINE, str(tasks)], env=env, capture_output=True, text=True
        )
    if out.returncode:
        print(out.stderr[-3000:])
        return {}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _run(label: str, kind: str, days: int, workers: int | None, m: Measured) -> Run:
    return Run(
        label, kind, days, workers, m.seconds, m.returncode, m.largest_process_mb, m.tree,
        m.cpu_seconds, m.load_average,
    )  # fmt: skip


def _done(run: Run, home: Path, keep: bool) -> None:
    print(
        f"{run.label}: exit {run.returncode}, {run.seconds:,.1f} s, tree peak RSS "
        f"{run.tree.peak_rss_mb:,.0f} MB (PSS {run.tree.peak_pss_mb:,.0f} MB), "
        f"{run.events_per_second:,.0f} events/s, CPU {run.cpu_seconds:,.0f} s, "
        f"load {run.load_average[0]:.1f} -> {run.load_average[1]:.1f}",
        flush=True,
    )
    if not keep:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days generated and backfilled")
    parser.add_argument("--short", type=int, default=10, help="the shorter backfill (days)")
    parser.add_argument("--orgs", type=int, default=12_600)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 2, 9))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="backfill --workers values to measure (1: no Dask)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "backfill")
    parser.add_argument(
        "--prefect",
        choices=["server", "temporary"],
        default="server",
        help="server: start `prefect server` once for every run (or use PREFECT_API_URL); "
        "temporary: each backfill starts Prefect's temporary server, as with no API URL",
    )
    parser.add_argument("--skip-generate", action="store_true", help="reuse the world only")
    parser.add_argument(
        "--direct", choices=["overlap", "serial", "both", "none"], default="overlap",
        help="direct-call baselines: the flow's schedule on plain threads (overlap, the one "
        "overhead is measured against), or ingest everything then score (serial)",
    )  # fmt: skip
    parser.add_argument("--keep-homes", action="store_true", help="keep the homes afterwards")
    args = parser.parse_args()
    if not 0 < args.short <= args.days:
        parser.error("--short must be between 1 and --days")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    world = world_for(out, args.orgs, args.days, args.start, args.seed, args.skip_generate)
    landing = world / "landing"
    work = out / "runs"
    work.mkdir(exist_ok=True)
    lengths = sorted({args.short, args.days})

    runs: list[Run] = []
    with prefect_api(args.prefect, out) as api:
        for days in lengths:
            for workers in args.workers:
                runs.append(
                    run_flow(landing, work, args.start, days, workers, args.keep_homes, api)
                )
            for how in ("overlap", "serial"):
                if args.direct in (how, "both"):
                    runs.append(run_direct(landing, work, args.start, days, args.keep_homes, how))
        engine = run_engine(api)
    report(runs, args, world, api, engine)


def _overheads(runs: list[Run], direct: dict[int, Run]) -> dict[str, dict[str, float]]:
    """(flow - direct) per day, in wall and CPU seconds, per run length and worker count."""
    out: dict[str, dict[str, float]] = {}
    for r in runs:
        base = direct.get(r.days)
        if r.kind == "flow" and r.returncode == 0 and base is not None:
            out[f"{r.days}d-w{r.workers}"] = {
                "wall": (r.seconds - base.seconds) / r.days,
                "cpu": (r.cpu_seconds - base.cpu_seconds) / r.days,
            }
    return out


def _marginal(
    overheads: dict[str, dict[str, float]], short: int, long: int, workers: int
) -> dict[str, float] | None:
    """Overhead per extra day between the two lengths, and what is left: a fixed cost."""
    a, b = overheads.get(f"{short}d-w{workers}"), overheads.get(f"{long}d-w{workers}")
    if a is None or b is None or long == short:
        return None
    out = {}
    for what in ("wall", "cpu"):
        per_day = (b[what] * long - a[what] * short) / (long - short)
        out[what] = per_day
        out[f"{what}_fixed"] = a[what] * short - per_day * short
    return out


def report(
    runs: list[Run],
    args: argparse.Namespace,
    world: Path,
    api: PrefectApi,
    engine: dict[str, float],
) -> None:
    direct = {r.days: r for r in runs if r.kind == "direct" and r.returncode == 0}
    overheads = _overheads(runs, direct)
    where = {
        "server": "a Prefect server started once (start-up not timed)",
        "existing": f"PREFECT_API_URL {api.url}",
        "temporary": "a temporary Prefect server per backfill (start-up timed)",
    }[api.mode]
    print()
    print(f"accesswatch backfill: {args.orgs:,} organisations, days from {args.start}, "
          f"{os.cpu_count()} cores; flows report to {where}")  # fmt: skip
    head = (
        f"{'run':30s} {'wall':>9s} {'CPU':>8s} {'events/s':>9s} {'tree RSS':>9s} "
        f"{'tree PSS':>9s} {'largest':>8s} {'vs direct':>9s} {'overhead/day':>17s}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        base = direct.get(r.days)
        ratio = over = ""
        key = f"{r.days}d-w{r.workers}"
        if key in overheads and base is not None:
            ratio = f"{r.seconds / base.seconds:.2f}x"
            over = f"{overheads[key]['wall']:+.2f} s ({overheads[key]['cpu']:+.2f} CPU)"
        wall = f"{r.seconds / 60:.1f} min" if r.returncode == 0 else f"exit {r.returncode}"
        print(
            f"{r.label:30s} {wall:>9s} {r.cpu_seconds / 60:>4.1f} min {r.events_per_second:>9,.0f} "
            f"{r.tree.peak_rss_mb / 1024:>7.2f}GB {r.tree.peak_pss_mb / 1024:>7.2f}GB "
            f"{r.largest_process_mb / 1024:>6.2f}GB {ratio:>9s} {over:>17s}"
        )
    print("overhead/day = (backfill - direct calls) / days, wall (and CPU) seconds")
    marginal = {}
    for workers in args.workers:
        m = _marginal(overheads, args.short, args.days, workers)
        if m is not None:
            marginal[str(workers)] = m
            print(
                f"Prefect overhead per extra day (--workers {workers}, {args.short} -> "
                f"{args.days} days): {m['wall']:+.2f} s wall ({m['cpu']:+.2f} s CPU); "
                f"fixed per run {m['wall_fixed']:+.1f} s wall ({m['cpu_fixed']:+.1f} s CPU)"
            )
    kinds = sorted({(r.kind, r.workers) for r in runs}, key=str)
    for kind, workers in kinds:
        by_days = {r.days: r for r in runs if (r.kind, r.workers) == (kind, workers)}
        if args.short in by_days and args.days in by_days and args.short != args.days:
            a, b = by_days[args.short].tree.peak_rss_mb, by_days[args.days].tree.peak_rss_mb
            what = {"direct": "direct calls", "serial": "direct calls, serial"}.get(
                kind, f"backfill --workers {workers}"
            )
            print(
                f"peak tree RSS, {what}: {args.short} days {a / 1024:.2f} GB, "
                f"{args.days} days {b / 1024:.2f} GB ({b / a - 1:+.0%})"
            )
    if engine:
        print(
            f"Prefect engine alone ({engine['tasks']:.0f} no-op tasks with the flows' options): "
            f"{engine['wall_ms_per_task']:.0f} ms wall, {engine['cpu_ms_per_task']:.0f} ms CPU "
            f"per task; x {TASKS_PER_DAY} tasks a day = "
            f"{engine['wall_ms_per_task'] * TASKS_PER_DAY / 1000:.2f} s wall a day"
        )
    for r in runs:
        if r.kind == "flow" and r.returncode == 0:
            roles = {k: round(v) for k, v in r.tree.peak_by_role_mb.items()}
            print(f"{r.label}: peak RSS by role (MB) {roles}")
    print(
        f"targets: 30 national days <= {TARGET_MINUTES_30_DAYS:.0f} min; peak RSS <= "
        f"{TARGET_PEAK_GB:.0f} GB and flat in days; Prefect overhead <= "
        f"{TARGET_OVERHEAD_S_PER_DAY:.0f} s per day"
    )
    params = {k: str(v) if isinstance(v, Path | date) else v for k, v in vars(args).items()}
    results = {
        "params": params,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        },
        "prefect_api": {
            "mode": api.mode,
            "url": api.url,
            "server_start_seconds": round(api.start_seconds, 1),
        },
        "world": json.loads((world / "bench-world.json").read_text()),
        "runs": [{**asdict(r), "events_per_second": round(r.events_per_second)} for r in runs],
        "overhead_per_day_seconds": overheads,
        "overhead_marginal_per_day_seconds": marginal,
        "prefect_engine_per_task_ms": engine,
    }
    path = args.out.resolve() / "backfill-results.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"figures written to {path}")


if __name__ == "__main__":
    main()

"""Benchmark: ``make demo``'s command on the committed sample, against the same work without
Prefect, in one run.

Times, each as its own child process on a fresh home (``--repeats`` times, median wall time
and the largest peak RSS):

- ``accesswatch demo --home H --landing data/sample/landing`` exactly as ``make demo`` runs
  it (no ``PREFECT_API_URL``: the flow starts a temporary Prefect server), the row of the
  issue's table (target: <= 45 s);
- the baseline: the same plan (:func:`pipeline.plan.serial.run_days`: recover, reference,
  every delivery staged and committed, every day profiled and scored, in the same order)
  in one process without Prefect - the floor the demo's work sets on this machine.

The difference is what Prefect costs (the server start, the task runs and their results)
less what the flow gains by staging, committing and scoring in three overlapping lanes where
the baseline runs one step at a time; on a loaded machine it can be negative.

    python benchmarks/demo.py --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import Measured, measure

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "landing"
# The key `make demo` uses: labelled as such, only ever used on the synthetic sample.
DEMO_KEY = "DEMO-KEY-not-secret-for-synthetic-sample-data-only"
SERIAL = (
    "import sys; from pathlib import Path; from schemas.settings import load_settings; "
    "from pipeline.plan.serial import run_days; "
    "r = run_days(load_settings(home=Path(sys.argv[1]), landing=Path(sys.argv[2]))); "
    "sys.exit(1 if r.failed else 0)"
)


def accesswatch() -> str:
    """The ``accesswatch`` script beside this interpreter (the project's venv)."""
    found = Path(sys.executable).with_name("accesswatch")
    return str(found) if found.exists() else "accesswatch"


def quiet(cmd: list[str], log: Path) -> list[str]:
    """``cmd`` with its output sent to ``log``."""
    return ["sh", "-c", 'log=$1; shift; exec "$@" > "$log" 2>&1', "sh", str(log), *cmd]


def timed(name: str, cmd: list[str], repeats: int, work: Path, env: dict[str, str]) -> Measured:
    """Median wall time and largest peak RSS of ``repeats`` runs, each on a fresh home."""
    runs = []
    for i in range(repeats):
        home = work / f"{name}-{i}"
        log = work / f"{name}-{i}.log"
        prefect_home = tempfile.mkdtemp(dir=work, prefix="prefect-")
        run = measure(quiet([*cmd, str(home), str(SAMPLE)], log),
                      env={**env, "PREFECT_HOME": prefect_home})  # fmt: skip
        if run.returncode:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
            raise SystemExit(f"{tail}{name} failed (exit {run.returncode})")
        runs.append(run)
    return Measured(statistics.median(r.seconds for r in runs), max(r.peak_rss_mb for r in runs), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    env = {
        "ACCESSWATCH_PSEUDONYM_KEY": DEMO_KEY,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    os.environ.pop("PREFECT_API_URL", None)  # as `make demo`: a temporary server
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        work = Path(tmp)
        # timed() appends the home and the landing; `demo` takes them as options
        demo_cmd = ["sh", "-c", f'exec "{accesswatch()}" demo --home "$0" --landing "$1"']
        serial = [sys.executable, "-c", SERIAL]
        base = timed("serial", serial, args.repeats, work, env)
        got = timed("demo", demo_cmd, args.repeats, work, env)
    print(f"{'run (sample, 42 days)':<44} {'seconds':>8} {'peak RSS MB':>12}")
    print(f"{'plan in one process, no Prefect (baseline)':<44} {base.seconds:>8.1f} "
          f"{base.peak_rss_mb:>12,.0f}")  # fmt: skip
    print(f"{'accesswatch demo (make demo; target <= 45 s)':<44} {got.seconds:>8.1f} "
          f"{got.peak_rss_mb:>12,.0f}")  # fmt: skip
    print(f"demo / baseline: {got.seconds / base.seconds:.2f}x; "
          f"demo - baseline: {got.seconds - base.seconds:+.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()

"""Benchmark: the analyst commands on the committed sample, against ``accesswatch --help``.

Builds a home of the committed sample (``accesswatch backfill`` through the CLI, a few
minutes; a throwaway key unless ACCESSWATCH_PSEUDONYM_KEY is set) or reuses one given by
``--home``. Then times, each as its own child process of the installed ``accesswatch``,
``--repeats`` times (median, wall time and the largest peak RSS):

- ``accesswatch --help`` (the floor: interpreter start and the CLI's imports);
- ``suspects --day D --format json``;
- ``report --day D`` (written to a temporary folder);
- ``explain ORG --day D`` (ORG: the top of the day's list unless ``--org`` is given).

Each is printed in seconds and as a ratio to ``--help`` (targets: suspects <= 1 s and
<= 2x, report <= 2 s and <= 4x).

    python benchmarks/analyst.py --home /tmp/batch-home --day 2026-09-20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import Measured, measure

KEY = "benchmark-key-not-secret-0123456789"
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "landing"
DAY = "2026-09-20"  # the last day of the committed sample


def accesswatch() -> str:
    """The ``accesswatch`` script beside this interpreter (the project's venv)."""
    found = Path(sys.executable).with_name("accesswatch")
    return str(found) if found.exists() else "accesswatch"


def build_home(home: Path, env: dict[str, str]) -> None:
    """The sample backfilled into ``home``; its output goes to ``<home>.backfill.log``."""
    log = home.with_name(f"{home.name}.backfill.log")
    home.parent.mkdir(parents=True, exist_ok=True)
    cmd = [accesswatch(), "backfill", "--home", str(home), "--landing", str(SAMPLE)]
    run = measure(
        ["sh", "-c", 'log=$1; shift; exec "$@" > "$log" 2>&1', "sh", str(log), *cmd], env=env
    )
    if run.returncode:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
        raise SystemExit(f"{tail}backfill of the sample failed (exit {run.returncode})")
    print(f"built {home}: backfill {run.seconds:.0f} s, peak RSS {run.peak_rss_mb:,.0f} MB")


def top_org(home: Path, day: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [accesswatch(), "suspects", "--home", str(home), "--day", day, "--format", "json"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = json.loads(out)
    if not rows:
        raise SystemExit(f"no suspects on {day}: nothing to explain")
    return str(rows[0]["org_id"])


def timed(cmd: list[str], env: dict[str, str], repeats: int) -> tuple[float, float]:
    """(median seconds, largest peak RSS MB) of ``repeats`` runs; stdout discarded."""
    runs: list[Measured] = []
    for _ in range(repeats):
        m = measure(["sh", "-c", 'exec "$@" > /dev/null', "sh", *cmd], env=env)
        if m.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed (exit {m.returncode})")
        runs.append(m)
    return statistics.median(m.seconds for m in runs), max(m.peak_rss_mb for m in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a home of the sample (built when missing)")
    parser.add_argument("--day", default=DAY, help="the day listed and reported")
    parser.add_argument("--org", help="the organisation explained (default: the top suspect)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command")
    args = parser.parse_args()
    env = {"ACCESSWATCH_PSEUDONYM_KEY": os.environ.get("ACCESSWATCH_PSEUDONYM_KEY", KEY)}
    with tempfile.TemporaryDirectory(prefix="aw-bench-analyst-") as tmp:
        home = args.home or Path(tmp) / "home"
        if not (home / "warehouse.duckdb").exists():
            build_home(home, env)
        org = args.org or top_org(home, args.day, env)
        where = ["--home", str(home), "--day", args.day]
        aw = accesswatch()
        commands = {
            "accesswatch --help": [aw, "--help"],
            "suspects --format json": [aw, "suspects", *where, "--format", "json"],
            "report": [aw, "report", *where, "--out", tmp],
            f"explain {org}": [aw, "explain", org, *where],
        }
        results = {label: timed(cmd, env, args.repeats) for label, cmd in commands.items()}
    floor = results["accesswatch --help"][0]
    print(f"day {args.day}, median of {args.repeats} runs each")
    for label, (seconds, rss) in results.items():
        print(f"{label:28s} {seconds:5.2f} s  {seconds / floor:4.1f}x --help  {rss:5.0f} MB")
    print("targets: suspects <= 1 s and <= 2x --help; report <= 2 s and <= 4x --help")


if __name__ == "__main__":
    main()

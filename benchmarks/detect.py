"""Benchmark: profile + detect for one national-scale day with 28 days of history.

Needs a home with at least 29 ingested national days (12,600 organisations, about 2 M LRS
events a weekday). Builds one when --home is not given (generate + ingest, which takes a
while). The daily summaries of the 28 days before the measured day are built first (not
timed: a nightly run finds them already there). Then, each in its own child process,
measured the same way (wall time, peak RSS):

- profile + detect of the day (what the nightly run does);
- the baseline: one DuckDB GROUP BY org over that day's Parquet (five aggregates).

    python benchmarks/detect.py --home HOME --day 2026-03-10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import measure

KEY = "benchmark-key-not-secret-0123456789"

RUN = """
import sys
from datetime import date
from pathlib import Path
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import detect
from schemas.settings import load_settings
s = load_settings(home=Path(sys.argv[1]))
day = date.fromisoformat(sys.argv[2])
p = build_profiles(s, day)
d = detect(s, day)
print(f"profile {p.seconds:.1f} s ({p.active_organisations:,} active, {p.events_today:,} events)")
print(f"detect  {d.seconds:.1f} s ({d.organisations:,} orgs, {d.rule_hits:,} rule hits)")
"""

BASELINE = """
import sys, duckdb
con = duckdb.connect(config={"threads": 2})
rows = con.execute(
    "SELECT ukprn, count(*), count(DISTINCT learner_pid), count(DISTINCT user_name), "
    "avg(learner_age), sum(CASE WHEN uln_valid THEN 0 ELSE 1 END) "
    "FROM read_parquet($files) GROUP BY ukprn",
    {"files": sys.argv[1]},
).fetchall()
print(f"baseline GROUP BY org: {len(rows):,} groups")
"""


def build_home(tmp: Path, last: date) -> Path:
    from evaluation.generate import generate_world
    from pipeline.ingest.deliveries import ingest
    from pipeline.ingest.reference import load_reference
    from schemas.generate import WorldConfig
    from schemas.settings import load_settings

    world = tmp / "world"
    generate_world(world, WorldConfig(orgs=12_600, days=29, start=last - timedelta(28), seed=11))
    settings = load_settings(home=tmp / "home", landing=world / "landing", pseudonym_key=KEY)
    load_reference(settings)
    ingest(settings, "lrs", None)
    ingest(settings, "npd", None)
    return settings.home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a home with 29+ ingested national days")
    parser.add_argument("--day", default="2026-03-10", help="the measured day (a weekday)")
    args = parser.parse_args()
    day = date.fromisoformat(args.day)
    with tempfile.TemporaryDirectory(prefix="aw-bench-detect-") as tmp:
        home = args.home or build_home(Path(tmp), day)
        from pipeline.profile.build import build_profiles
        from schemas.settings import load_settings

        settings = load_settings(home=home)
        for back in range(28, 0, -1):
            build_profiles(settings, day - timedelta(back))  # history, as a nightly finds it
        part = home / "lake" / "source=lrs" / f"event_date={day.isoformat()}"
        base = measure([sys.executable, "-c", BASELINE, str(part / "*.parquet")])
        run = measure([sys.executable, "-c", RUN, str(home), day.isoformat()])
        for label, m in (("baseline DuckDB GROUP BY org", base), ("profile + detect", run)):
            print(f"{label:30s} {m.seconds:6.1f} s, peak RSS {m.peak_rss_mb:,.0f} MB")
        print(f"ratio: {run.seconds / base.seconds:.1f}x (targets: <= 30 s, <= 15x, <= 3 GB)")


if __name__ == "__main__":
    main()

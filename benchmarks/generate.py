"""Benchmark: one national-scale term-time weekday of synthetic LRS and NPD deliveries.

    python benchmarks/generate.py [--orgs 12600] [--days 1] [--start 2026-10-06] [--seed 7]

Generates the world into a temporary folder and prints wall time, events per second and
peak RSS; then, in the same process, times polars writing the same number of rows of a
random 14-column frame to a gzipped CSV (the floor for "just writing the bytes") and prints
the ratio. Target: one national day (12,600 organisations, about 2 M LRS calls) in under
90 s on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.generate import generate_world
from schemas.generate import WorldConfig


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_frame(rows: int, seed: int = 0) -> pl.DataFrame:
    """A frame shaped like LRS rows: 10 string columns, 4 integer columns."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for i in range(10):
        cols[f"s{i}"] = pl.Series(rng.integers(0, 10**12, rows)).cast(pl.String)
    for i in range(4):
        cols[f"i{i}"] = rng.integers(0, 10_000, rows)
    return pl.DataFrame(cols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=12_600)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 10, 6))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    config = WorldConfig(
        orgs=args.orgs, days=args.days, start=args.start, seed=args.seed, malformed_rate=0.001
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        summary = generate_world(out, config)
        wall = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    rss = peak_rss_mb()
    events = summary.lrs_events + summary.npd_events
    print(f"generate: {args.orgs} orgs x {args.days} day(s) from {args.start}")
    print(f"  LRS events      {summary.lrs_events:>12,}")
    print(f"  NPD events      {summary.npd_events:>12,}")
    print(f"  rows written    {sum(summary.rows_written.values()):>12,}  in {summary.files} files")
    print(f"  bytes on disk   {size / 1e6:>12,.1f} MB")
    print(f"  wall time       {wall:>12.1f} s")
    print(f"  events/s        {events / wall:>12,.0f}")
    print(f"  peak RSS        {rss:>12,.0f} MB")

    frame = random_frame(sum(summary.rows_written.values()))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        frame.write_csv(Path(tmp) / "baseline.csv.gz", compression="gzip", compression_level=1)
        base = time.perf_counter() - t0
    print(f"baseline: polars write_csv gzip level 1, {frame.height:,} rows x {frame.width} cols")
    print(f"  wall time       {base:>12.1f} s")
    print(f"  ratio           {wall / base:>12.1f} x  (generate / baseline)")
    print(f"  peak RSS        {peak_rss_mb():>12,.0f} MB (process, after baseline)")


if __name__ == "__main__":
    main()

"""Benchmark: ingest one generated national-scale LRS delivery day.

Prints wall time, rows/s and peak RSS of `accesswatch ingest`, and, measured the same way on
the same files, a baseline that only converts them to Parquet with polars (no validation,
pseudonymisation, dedup or ledger), with the ratio between the two.

    python benchmarks/ingest.py                 # generate 12,600 orgs, one weekday
    python benchmarks/ingest.py --world DIR     # reuse a generated world
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import measure

KEY = "benchmark-key-not-secret-0123456789"
BASELINE = """
import sys, polars as pl
from pathlib import Path
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
rows = 0
for i, f in enumerate(sorted(Path(sys.argv[1]).iterdir())):
    if ".jsonl" in f.name:
        frame = pl.read_ndjson(f, infer_schema_length=None)
    else:
        frame = pl.read_csv(f, infer_schema=False)
    frame.write_parquet(out / f"{i}.parquet")
    rows += frame.height
print(rows)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, help="an existing generated world")
    parser.add_argument("--orgs", type=int, default=12_600)
    parser.add_argument("--day", default="2026-03-03", help="a term-time weekday")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aw-bench-ingest-") as tmp:
        world = args.world
        if world is None:
            from evaluation.generate import generate_world
            from schemas.generate import WorldConfig

            world = Path(tmp) / "world"
            config = WorldConfig(
                orgs=args.orgs, days=1, start=date.fromisoformat(args.day), seed=args.seed
            )
            generate_world(world, config)
        landing = world / "landing"
        day_dir = landing / "lrs" / args.day
        files = sorted(day_dir.iterdir())
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"delivery {day_dir}: {len(files)} files, {size_mb:.0f} MB compressed")
        base = measure([sys.executable, "-c", BASELINE, str(day_dir), str(Path(tmp) / "baseline")])
        home = Path(tmp) / "home"
        cli = [sys.executable, "-m", "cli.app"]
        common = ["--home", str(home), "--landing", str(landing)]
        env = {"ACCESSWATCH_PSEUDONYM_KEY": KEY, "COLUMNS": "160"}
        measure([*cli, "load-reference", *common], env)
        run = measure([*cli, "ingest", "--source", "lrs", "--day", args.day, *common], env)
        import polars as pl

        from pipeline.store.lake import lake_glob

        rows = pl.scan_parquet(lake_glob(home, "lrs")).select(pl.len()).collect().item()
        print(
            f"baseline polars CSV/JSONL -> Parquet: {base.seconds:6.1f} s, "
            f"peak RSS {base.peak_rss_mb:,.0f} MB"
        )
        print(
            f"accesswatch ingest:                    {run.seconds:6.1f} s, "
            f"peak RSS {run.peak_rss_mb:,.0f} MB, "
            f"{rows:,} rows written, {rows / run.seconds:,.0f} rows/s"
        )
        print(f"ratio ingest / baseline: {run.seconds / base.seconds:.2f}x")
        if run.returncode not in (0, 1):
            raise SystemExit(f"ingest failed with exit code {run.returncode}")


if __name__ == "__main__":
    main()

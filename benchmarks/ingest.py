"""Benchmark: ingest one generated national-scale LRS delivery day.

Prints wall time, rows/s and peak RSS of `accesswatch ingest`, and, measured the same way on
the same files, a baseline that only converts them to Parquet with polars (no validation,
pseudonymisation, dedup or ledger): polars ``scan_csv``/``scan_ndjson`` -> ``sink_parquet``,
with the ratio between the two. Then it times the pseudonymisation alone on ``--hmac-values``
ULN-like values: the vectorised :func:`pipeline.ingest.pseudonymise.pseudonymise_column`
against the per-value Python ``hashlib`` HMAC it replaced (kept here as the reference), and
checks that the two agree.

    python benchmarks/ingest.py                 # generate 12,600 orgs, one weekday
    python benchmarks/ingest.py --world DIR     # reuse a generated world
    python benchmarks/ingest.py --hmac-only     # only the pseudonymisation timing
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import measure

KEY = "benchmark-key-not-secret-0123456789"
BASELINE = """
import sys, polars as pl
from pathlib import Path
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
for i, f in enumerate(sorted(Path(sys.argv[1]).iterdir())):
    if ".jsonl" in f.name:
        frame = pl.scan_ndjson(f, infer_schema_length=None)
    else:
        frame = pl.scan_csv(f, infer_schema=False)
    frame.sink_parquet(out / f"{i}.parquet")
print(sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in out.iterdir()))
"""


def python_pseudonyms(key: bytes, values: list[str], domain: str) -> list[str]:
    """The per-value HMAC that ingest used before the vectorised path (keyed inner and
    outer SHA-256 states computed once and copied per value)."""
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block)).copy
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block)).copy
    prefix = f"{domain}:".encode()
    out: list[str] = []
    for value in values:
        i = inner()
        i.update(prefix + value.encode())
        o = outer()
        o.update(i.digest())
        out.append(o.hexdigest()[:32])
    return out


def time_pseudonymisation(n: int) -> None:
    """Time both paths on ``n`` random 10-digit ULN-like strings; they must agree."""
    import numpy as np
    import polars as pl

    from pipeline.ingest.pseudonymise import pseudonymise_column

    values = pl.Series(np.random.default_rng(7).integers(10**9, 10**10, n).astype(str))
    key = KEY.encode()
    started, cpu = time.perf_counter(), time.process_time()
    # what the former pseudonymise_column did: hash each distinct value once, join back
    uniques = values.unique()
    mapping = pl.DataFrame(
        {"value": uniques, "pid": python_pseudonyms(key, uniques.to_list(), "uln")}
    )
    before = values.rename("value").to_frame().join(mapping, on="value", maintain_order="left")
    wall_before, cpu_before = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    after = pseudonymise_column(values, key, "uln")
    wall_after, cpu_after = time.perf_counter() - started, time.process_time() - cpu
    assert before["pid"].to_list() == after.to_list(), "vectorised pseudonyms differ"
    print(
        f"pseudonymise {n:,} ULNs, Python hashlib HMAC (before): {wall_before:5.2f} s wall, "
        f"{cpu_before:5.2f} s CPU"
    )
    print(
        f"pseudonymise {n:,} ULNs, vectorised (polars-hash):    {wall_after:5.2f} s wall, "
        f"{cpu_after:5.2f} s CPU; identical; {wall_before / wall_after:.1f}x faster"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, help="an existing generated world")
    parser.add_argument("--orgs", type=int, default=12_600)
    parser.add_argument("--day", default="2026-03-03", help="a term-time weekday")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--hmac-values", type=int, default=2_000_000)
    parser.add_argument("--hmac-only", action="store_true", help="skip the ingest run")
    args = parser.parse_args()
    if not args.hmac_only:
        run_ingest(args)
    time_pseudonymisation(args.hmac_values)


def run_ingest(args: argparse.Namespace) -> None:
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
            f"baseline polars scan -> sink_parquet:  {base.seconds:6.1f} s, "
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

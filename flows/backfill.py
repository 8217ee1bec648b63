"""The backfill flow: a range of delivery days, ingested in parallel and scored in order."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow
from prefect.states import Completed, Failed, State

from flows.artifacts import publish
from flows.work import process_days, task_runner
from pipeline.plan.run import landing_days
from pipeline.store.lake import run_lock
from schemas.flows import JobPaths, RunResult


@flow(name="accesswatch-backfill")
def backfill(
    start: date | None = None,
    end: date | None = None,
    home: Path | None = None,
    landing: Path | None = None,
    config: Path | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    lock_wait_seconds: float = 0.0,
) -> State:
    """Ingest and score ``[start, end]`` (default: every day of the landing folder).

    Resumable: finished deliveries and days are skipped. Days that fail are reported and
    the others complete; the run then ends Failed, naming them.
    """
    paths = JobPaths.resolved(home, landing, config)
    s = paths.settings()
    days = landing_days(s)
    if not days and (start is None or end is None):
        raise ValueError(f"no delivery days in {s.landing}; give --start and --end")
    start = start or days[0]
    end = end or days[-1]
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    workers = workers or s.workers
    dask_address = dask_address or s.dask_address
    runner = task_runner(workers, dask_address)
    # One delivery stages per local worker; an existing cluster takes them all at once.
    slots = None if dask_address else workers
    with run_lock(s.home, lock_wait_seconds, purpose=f"backfill {start}..{end}"):
        result: RunResult = process_days.with_options(task_runner=runner)(
            paths, start, end, score_from=start, stage_slots=slots
        )
        result.flow = "backfill"
        publish(paths, end, result, missing=missing_lines(s.landing, result))
    return finish(result)


def missing_lines(landing: Path, result: RunResult) -> list[str]:
    """One line per missing delivery of the run, for the summary artifact."""
    return [
        f"{source} {d.day}: no delivery folder {landing / source / d.day.isoformat()}"
        for d in result.days
        for source in d.missing
    ]


def finish(result: RunResult) -> State:
    """Completed with the result, or Failed naming the failed days (result kept as data).
    Missing deliveries are named in the message either way; they do not fail the run."""
    missing = f"; missing deliveries: {', '.join(result.missing)}" if result.missing else ""
    if result.failed:
        names = "; ".join(f"{d.day}: {d.reason.strip('; ')}" for d in result.failed)
        return Failed(message=f"{len(result.failed)} day(s) failed: {names}{missing}", data=result)
    return Completed(message=f"{len(result.days)} day(s) done{missing}", data=result)

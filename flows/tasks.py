"""Prefect tasks: each one wraps one ``pipeline/`` step and nothing more.

Tasks take dates and paths (:class:`~schemas.flows.JobPaths`), never connections, frames
or settings objects, so they run the same in a thread, another process or a Dask worker.
Their caches are keyed on what the work depends on - the partition, the input files'
hashes, the code version and the warehouse's identity - and results are kept under the
home (``<home>/prefect-results``), where every worker of a cluster can read them.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from pipeline.ingest.deliveries import (
    CommittedDelivery,
    StagedDelivery,
    commit_delivery,
    new_run_id,
    prepare_delivery,
    recover_home,
    stage_delivery,
)
from pipeline.ingest.reference import load_reference
from pipeline.outputs.report import write_report
from pipeline.outputs.summary import day_summary
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import NoEventsError, detect
from pipeline.rank.listing import NotProfiledError
from pipeline.store.lake import home_lock
from pipeline.store.version import (
    code_version,
    day_inputs_fingerprint,
    home_id,
    reference_fingerprint,
    staged_fingerprint,
)
from pipeline.store.warehouse import connect, day_has_data, record_missing
from schemas.detection import REPORT_TOP
from schemas.flows import DaySummary, JobPaths
from schemas.ingest import DeliveryReport

RESULTS_DIR = "prefect-results"
IO_RETRIES = 2
IO_RETRY_DELAY_SECONDS = 5


def results_dir(paths: JobPaths) -> Path:
    return paths.settings().home / RESULTS_DIR


def _key(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def _ingest_key(_ctx: TaskRunContext, p: dict[str, Any]) -> str:
    s = p["paths"].settings()
    return _key(
        "ingest", home_id(s), p["source"], p["day"],
        staged_fingerprint(p["staged"]), code_version(),
    )  # fmt: skip


def _reference_key(_ctx: TaskRunContext, p: dict[str, Any]) -> str:
    s = p["paths"].settings()
    return _key("reference", home_id(s), reference_fingerprint(s), code_version())


def _score_key(_ctx: TaskRunContext, p: dict[str, Any]) -> str:
    s = p["paths"].settings()
    return _key("score", home_id(s), p["day"], day_inputs_fingerprint(s, p["day"]), code_version())


@task(name="recover-home", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_SECONDS)
def recover(paths: JobPaths) -> list[str]:
    """Roll back any commit a killed run left in flight; clear stale staging."""
    s = paths.settings()
    with home_lock(s.home, s.step_lock_wait_seconds, purpose="recover"):
        return recover_home(s)


@task(name="record-missing", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_SECONDS)
def missing(paths: JobPaths, sources: tuple[str, ...], days: list[date]) -> list[DeliveryReport]:
    """Record in the ledger every delivery of ``days`` whose folder is absent (see
    :func:`pipeline.store.warehouse.record_missing`); return them. A missing delivery is not a
    failure: the day is still scored from what else came in."""
    s = paths.settings()
    run_id = new_run_id()
    with home_lock(s.home, s.step_lock_wait_seconds, purpose="record missing deliveries"):
        return [r for source in sources for r in record_missing(s, source, days, run_id)]


@task(
    name="load-reference",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAY_SECONDS,
    cache_key_fn=_reference_key,
    persist_result=True,
)
def reference(paths: JobPaths) -> list[DeliveryReport]:
    """Load organisations and agreements (skipped when the files and code are unchanged)."""
    s = paths.settings()
    return load_reference(s, lock_wait_seconds=s.step_lock_wait_seconds)


@task(
    name="stage-delivery",
    task_run_name="stage-{source}-{day}",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAY_SECONDS,
)
def stage(
    paths: JobPaths, source: str, day: date, run_id: str, done: dict[tuple[str, str], str]
) -> StagedDelivery:
    """Read, validate and pseudonymise one delivery day into staging. Takes no lock, so
    deliveries stage in parallel. ``done`` lists committed files, which are not read again."""
    return stage_delivery(paths.settings(), source, day, run_id, done)


@task(
    name="commit-delivery",
    task_run_name="ingest-{source}-{day}",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAY_SECONDS,
    cache_key_fn=_ingest_key,
    persist_result=True,
)
def commit(paths: JobPaths, source: str, day: date, staged: StagedDelivery) -> CommittedDelivery:
    """Commit a staged delivery day. Flows commit one delivery at a time in date order, so
    the copy of an event kept is the first delivered, as in a serial run. Duplicates are
    dropped before the writer lock is taken (a day being scored holds it); under the lock
    the files move into the lake and the ledger is written."""
    s = paths.settings()
    staged = prepare_delivery(s, staged)
    with home_lock(s.home, s.step_lock_wait_seconds, purpose=f"commit {source} {day}"):
        return commit_delivery(s, staged)


@task(
    name="score-day",
    task_run_name="score-{day}",
    retries=1,
    retry_delay_seconds=IO_RETRY_DELAY_SECONDS,
    cache_key_fn=_score_key,
    persist_result=True,
)
def score_day(paths: JobPaths, day: date) -> DaySummary:
    """Profile and detect one day (its 28-day windows need the days before it).

    A day with no events in the lake and no delivery committed for it is not scored
    (``scored`` False; see :func:`pipeline.store.warehouse.day_has_data`).
    """
    s = paths.settings()
    with home_lock(s.home, s.step_lock_wait_seconds, purpose=f"check {day}"), connect(s) as con:
        has_data = day_has_data(con, s.home, day)
    if not has_data:
        # detect clears any list a day with no data was given before, then says so
        with contextlib.suppress(NoEventsError):
            detect(s, day, lock_wait_seconds=s.step_lock_wait_seconds)
        return DaySummary(day=day, scored=False)
    build_profiles(s, day, lock_wait_seconds=s.step_lock_wait_seconds)
    detect(s, day, lock_wait_seconds=s.step_lock_wait_seconds)
    # Under the lock: a commit in another thread of this process may be writing the
    # warehouse, and DuckDB will not open it read-only beside a writing connection.
    with home_lock(s.home, s.step_lock_wait_seconds, purpose=f"summary {day}"):
        return day_summary(s, day)


@task(name="write-report", task_run_name="report-{day}")
def report(paths: JobPaths, day: date, top: int = REPORT_TOP) -> Path | None:
    """The day's self-contained HTML report under ``<home>/reports`` (None: day not scored)."""
    try:
        return write_report(paths.settings(), day, top=top)
    except NotProfiledError:
        return None

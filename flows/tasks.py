"""Prefect tasks: each one wraps one step of :mod:`pipeline.plan.steps` and nothing more.

Tasks take dates and paths (:class:`~schemas.flows.JobPaths`), never connections, frames
or settings objects, so they run the same in a thread, another process or a Dask worker.
Their caches are keyed on what the work depends on - the partition, the input files'
hashes, the code version and the warehouse's identity - and results are kept under the
home (``<home>/prefect-results``), where every worker of a cluster can read them.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from pipeline.ingest.deliveries import CommittedDelivery, StagedDelivery, staged_fingerprint
from pipeline.outputs.report import write_report
from pipeline.plan import steps
from pipeline.rank.listing import NotProfiledError
from pipeline.store.version import (
    code_version,
    day_inputs_fingerprint,
    home_id,
    reference_fingerprint,
)
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
    """:func:`pipeline.plan.steps.recover`."""
    return steps.recover(paths.settings())


@task(name="record-missing", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_SECONDS)
def missing(paths: JobPaths, sources: tuple[str, ...], days: list[date]) -> list[DeliveryReport]:
    """:func:`pipeline.plan.steps.record_missing_deliveries`."""
    return steps.record_missing_deliveries(paths.settings(), sources, days)


@task(
    name="load-reference",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAY_SECONDS,
    cache_key_fn=_reference_key,
    persist_result=True,
)
def reference(paths: JobPaths) -> list[DeliveryReport]:
    """:func:`pipeline.plan.steps.reference` (skipped when the files and code are
    unchanged)."""
    return steps.reference(paths.settings())


@task(
    name="stage-delivery",
    task_run_name="stage-{source}-{day}",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAY_SECONDS,
)
def stage(
    paths: JobPaths, source: str, day: date, run_id: str, done: dict[tuple[str, str], str]
) -> StagedDelivery:
    """:func:`pipeline.plan.steps.stage`: no lock, so deliveries stage in parallel."""
    return steps.stage(paths.settings(), source, day, run_id, done)


@task(
    name="commit-delivery",
    task_run_name="ingest-{source}-{day}",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAY_SECONDS,
    cache_key_fn=_ingest_key,
    persist_result=True,
)
def commit(paths: JobPaths, source: str, day: date, staged: StagedDelivery) -> CommittedDelivery:
    """:func:`pipeline.plan.steps.commit`: one delivery at a time, in date order."""
    return steps.commit(paths.settings(), source, day, staged)


@task(
    name="score-day",
    task_run_name="score-{day}",
    retries=1,
    retry_delay_seconds=IO_RETRY_DELAY_SECONDS,
    cache_key_fn=_score_key,
    persist_result=True,
)
def score_day(paths: JobPaths, day: date) -> DaySummary:
    """:func:`pipeline.plan.steps.score_day` (skipped when the day's inputs and the code are
    unchanged)."""
    return steps.score_day(paths.settings(), day)


@task(name="write-report", task_run_name="report-{day}")
def report(paths: JobPaths, day: date, top: int = REPORT_TOP) -> Path | None:
    """The day's self-contained HTML report under ``<home>/reports`` (None: day not scored)."""
    try:
        return write_report(paths.settings(), day, top=top)
    except NotProfiledError:
        return None

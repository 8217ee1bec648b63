"""The work shared by the nightly and backfill flows: ingest delivery days (in parallel,
on whatever task runner the caller chose), then score days in date order."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import allow_failure

from flows import tasks
from flows.progress import Progress, emit
from pipeline.ingest import (
    CommittedDelivery,
    StagedDelivery,
    committed_files,
    delivery_files,
    new_run_id,
)
from pipeline.lake import home_lock
from pipeline.version import code_version
from schemas.flows import DayOutcome, DayState, JobPaths, RunResult
from schemas.settings import Settings

SOURCES = ("lrs", "npd")


def task_runner(workers: int = 1, dask_address: str | None = None) -> TaskRunner[Any]:
    """Dask for an address or more than one worker; otherwise one thread in this process."""
    if dask_address or workers > 1:
        from prefect_dask import DaskTaskRunner  # imported only when scaling out

        if dask_address:
            # Its workers report to the Prefect API in their own PREFECT_API_URL.
            return DaskTaskRunner(address=dask_address)
        _share_api_url()
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,  # offline, and no port to clash with
            }
        )
    return ThreadPoolTaskRunner(max_workers=1)


def _share_api_url() -> None:
    """Point local Dask workers at this run's Prefect API.

    Without ``PREFECT_API_URL`` a flow runs against a temporary server; worker processes
    inherit the environment, and would each start one of their own without this.
    """
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.client.orchestration import get_client

        os.environ["PREFECT_API_URL"] = str(get_client(sync_client=True).api_url)


def _cause(staged: PrefectFuture[StagedDelivery], error: Exception) -> str:
    """The staging error when staging failed (the commit then never ran), else ``error``."""
    try:
        staged.result()
    except Exception as e:
        return str(e)
    return str(error)


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(i) for i in range((end - start).days + 1)]


def _pending(s: Settings, start: date, end: date) -> list[tuple[str, date, dict]]:
    """Delivery days in range with a file not yet committed, and what is committed."""
    with home_lock(s.home, s.step_lock_wait_seconds, purpose="plan"):
        done = {source: committed_files(s, source) for source in SOURCES}
    out = []
    for source in SOURCES:
        for day in days_between(start, end):
            try:
                files = delivery_files(s, source, day)
            except FileNotFoundError:
                continue
            rels = {(str(p.relative_to(s.landing))) for p in files}
            mine = {k: v for k, v in done[source].items() if k[0] in rels}
            if len({k[0] for k in mine}) < len(rels) or not files:
                out.append((source, day, mine))
    return out


@flow(name="accesswatch-process-days")
def process_days(paths: JobPaths, start: date, end: date, score_from: date) -> RunResult:
    """Ingest the deliveries of ``[start, end]``, then score every day of ``[start, end]``
    and every earlier day back to ``score_from`` that late events changed."""
    began = time.perf_counter()
    log = get_run_logger()
    s = paths.settings()
    result = RunResult(flow="process-days", start=start, end=end, code_version=code_version())
    outcomes = {d: DayOutcome(day=d) for d in days_between(start, end)}
    tasks.recover(paths)
    tasks.reference.with_options(result_storage=tasks.results_dir(paths))(paths)

    pending = _pending(s, start, end)
    emit(Progress("ingest", 0, len(pending)))
    # Stage every pending delivery in parallel; commit each source's days in date order,
    # so that a duplicated event keeps its first delivered copy, as in a serial run.
    committing = tasks.commit.with_options(result_storage=tasks.results_dir(paths))
    run_id = new_run_id()
    futures: dict[PrefectFuture[CommittedDelivery], tuple[str, date]] = {}
    staging: dict[tuple[str, date], PrefectFuture[StagedDelivery]] = {}
    previous: dict[str, PrefectFuture[CommittedDelivery]] = {}
    for source, day, done in sorted(pending, key=lambda p: (p[0], p[1])):
        staged = tasks.stage.submit(paths, source, day, f"{run_id}-{source}-{day:%Y%m%d}", done)
        after = [allow_failure(previous[source])] if source in previous else []
        fut = committing.submit(paths, source, day, staged, wait_for=after)  # type: ignore[call-overload]
        futures[fut] = (source, day)
        staging[(source, day)] = staged
        previous[source] = fut
    touched: set[date] = set()
    for n, fut in enumerate(as_completed(list(futures)), start=1):
        source, day = futures[fut]
        outcome = outcomes[day]
        events = 0
        try:
            committed = fut.result()
        except Exception as e:  # a day that fails is reported; the others go on
            outcome.ingest = DayState.failed
            outcome.reason += f"{source} ingest failed: {_cause(staging[(source, day)], e)}; "
            log.error("%s delivery %s failed: %s", source, day, e)
        else:
            touched.update(committed.event_dates)
            events = sum(r.rows_written for r in committed.reports)
            for r in committed.refused:
                outcome.ingest = DayState.failed
                outcome.reason += f"{r.source_file} {r.reason}; "
                log.error("%s %s", r.source_file, r.reason)
        emit(Progress("ingest", n, len(futures), day=day, events=events))
    pending_days = {day for _s, day, _d in pending}
    for day, outcome in outcomes.items():
        if day not in pending_days:
            outcome.ingest = DayState.cached

    # A late event changes its own day and every later day whose windows include it.
    earliest = min((d for d in touched if score_from <= d < start), default=start)
    late = days_between(earliest, start - timedelta(days=1)) if earliest < start else []
    to_score = [*late, *outcomes]
    for d in late:
        why = "re-scored: late events in its windows"
        outcomes[d] = DayOutcome(day=d, ingest=DayState.cached, reason=why)
    score = tasks.score_day.with_options(result_storage=tasks.results_dir(paths))
    emit(Progress("score", 0, len(to_score)))
    for n, day in enumerate(to_score, start=1):
        outcome = outcomes[day]
        if outcome.ingest is DayState.failed:
            outcome.scoring = DayState.failed
            outcome.reason += "not scored: its delivery failed"
        else:
            scored = score.submit(paths, day)
            scored.wait()
            try:
                outcome.summary = scored.result()
            except Exception as e:
                outcome.scoring = DayState.failed
                outcome.reason += f"scoring failed: {e}"
                log.error("scoring %s failed: %s", day, e)
            else:
                cached = scored.state.name == "Cached"
                outcome.scoring = DayState.cached if cached else DayState.done
        summary = outcome.summary
        emit(
            Progress("score", n, len(to_score), day=day,
                     events=summary.events_in if summary else 0, note=outcome.reason)
        )  # fmt: skip
    result.days = sorted(outcomes.values(), key=lambda o: o.day)
    result.seconds = round(time.perf_counter() - began, 3)
    return result

"""The work shared by the nightly and backfill flows: the plan of :mod:`pipeline.plan.run`
(ingest delivery days and score days in date order, the two overlapping) executed as Prefect
tasks on whatever task runner the caller chose."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import date
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows import tasks
from pipeline.ingest.deliveries import StagedDelivery
from pipeline.plan.run import SOURCES, Outcome, PlanRun, days_between
from pipeline.store.version import code_version
from schemas.flows import JobPaths, RunResult

LANES = 3
"""Threads in one process: one stages a delivery, one commits, one scores a day."""


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
    return ThreadPoolTaskRunner(max_workers=LANES)


def _share_api_url() -> None:
    """Point local Dask workers at this run's Prefect API.

    Without ``PREFECT_API_URL`` a flow runs against a temporary server; worker processes
    inherit the environment, and would each start one of their own without this.
    """
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.client.orchestration import get_client

        os.environ["PREFECT_API_URL"] = str(get_client(sync_client=True).api_url)


class PrefectLanes:
    """The lanes of a :class:`~pipeline.plan.run.PlanRun` as Prefect tasks on the flow's
    task runner; commits and scores keep their results under the home, for caching."""

    def __init__(self, paths: JobPaths) -> None:
        self.paths = paths
        storage = tasks.results_dir(paths)
        self.commit_task = tasks.commit.with_options(result_storage=storage)
        self.score_task = tasks.score_day.with_options(result_storage=storage)

    def stage(
        self, source: str, day: date, run_id: str, done: dict[tuple[str, str], str]
    ) -> PrefectFuture[Any]:
        return tasks.stage.submit(self.paths, source, day, run_id, done)

    def commit(self, source: str, day: date, staged: StagedDelivery) -> PrefectFuture[Any]:
        return self.commit_task.submit(self.paths, source, day, staged)

    def score(self, day: date) -> PrefectFuture[Any]:
        return self.score_task.submit(self.paths, day)

    def next_done(self, running: Iterable[Outcome]) -> PrefectFuture[Any]:
        return next(as_completed(cast(list[PrefectFuture[Any]], list(running))))

    def cached(self, outcome: Outcome) -> bool:
        return cast(PrefectFuture[Any], outcome).state.name == "Cached"


@flow(name="accesswatch-process-days", task_runner=task_runner())
def process_days(
    paths: JobPaths, start: date, end: date, score_from: date, stage_slots: int | None = 1
) -> RunResult:
    """Ingest the deliveries of ``[start, end]`` and score every day of ``[start, end]``
    in date order, plus every earlier day back to ``score_from`` that late events changed.

    ``stage_slots`` deliveries stage at once (None: all, left to the task runner).
    """
    began = time.perf_counter()
    result = RunResult(flow="process-days", start=start, end=end, code_version=code_version())
    tasks.recover(paths)
    tasks.reference.with_options(result_storage=tasks.results_dir(paths))(paths)
    missing = tasks.missing(paths, SOURCES, days_between(start, end))
    result.days = PlanRun(
        paths.settings(),
        PrefectLanes(paths),
        start,
        end,
        score_from,
        stage_slots,
        missing,
        log=get_run_logger(),
    ).run()
    result.seconds = round(time.perf_counter() - began, 3)
    return result

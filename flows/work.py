"""The work shared by the nightly and backfill flows: ingest delivery days and score days
in date order, the two overlapping, on whatever task runner the caller chose."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows import tasks
from flows.progress import Progress, emit
from flows.schedule import Delivery, Schedule
from pipeline.ingest.deliveries import (
    CommittedDelivery,
    StagedDelivery,
    committed_files,
    delivery_files,
    new_run_id,
)
from pipeline.store.lake import home_lock
from pipeline.store.version import code_version
from schemas.flows import DayOutcome, DayState, JobPaths, RunResult
from schemas.ingest import DeliveryReport
from schemas.settings import Settings

SOURCES = ("lrs", "npd")
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


class _Work:
    """Submits whatever the :class:`~flows.schedule.Schedule` says may start, and records
    what finished. Three lanes overlap: staging (``stage_slots`` deliveries at a time, None:
    all), committing and scoring (one at a time each)."""

    def __init__(
        self,
        paths: JobPaths,
        start: date,
        end: date,
        score_from: date,
        stage_slots: int | None,
        missing: list[DeliveryReport] | None = None,
    ) -> None:
        self.paths, self.start = paths, start
        s = paths.settings()
        self.log = get_run_logger()
        self.outcomes = {d: DayOutcome(day=d) for d in days_between(start, end)}
        for r in missing or []:
            outcome = self.outcomes[r.delivery_day]
            outcome.missing.append(r.source)
            outcome.reason += f"{r.source} delivery missing (no folder {r.source_file}); "
            self.log.warning("%s delivery %s is missing: %s", r.source, r.delivery_day, r.reason)
        pending = sorted(_pending(s, start, end), key=lambda p: (p[1], p[0]))
        self.to_stage = list(pending)
        self.plan = Schedule(start, end, score_from, s.late_delivery_days)
        self.plan.unfinished = {(source, day) for source, day, _ in pending}
        self.deliveries = len(pending)
        for day, outcome in self.outcomes.items():
            if outcome.missing:
                outcome.ingest = DayState.missing  # a failure of the other source overrides
            elif all(d != day for _, d in self.plan.unfinished):
                outcome.ingest = DayState.cached
        self.stage_slots = stage_slots
        self.staged: dict[Delivery, StagedDelivery] = {}
        self.running: dict[PrefectFuture[Any], tuple[str, Any]] = {}
        self.run_id = new_run_id()
        self.committed = self.scored = 0
        storage = tasks.results_dir(paths)
        self.commit_task = tasks.commit.with_options(result_storage=storage)
        self.score_task = tasks.score_day.with_options(result_storage=storage)

    def _staging(self) -> int:
        return sum(1 for lane, _ in self.running.values() if lane == "stage")

    def submit_ready(self) -> None:
        while self.to_stage and (self.stage_slots is None or self._staging() < self.stage_slots):
            source, day, done = self.to_stage.pop(0)
            run_id = f"{self.run_id}-{source}-{day:%Y%m%d}"
            staging = tasks.stage.submit(self.paths, source, day, run_id, done)
            self.running[staging] = ("stage", (source, day))
        delivery = self.plan.next_commit()
        if delivery is not None:
            commit = self.commit_task.submit(self.paths, *delivery, self.staged.pop(delivery))
            self.running[commit] = ("commit", delivery)
        while (due := self.plan.next_score()) is not None:
            outcome = self.outcomes[due]
            if outcome.ingest is not DayState.failed:
                self.running[self.score_task.submit(self.paths, due)] = ("score", due)
                return
            self.plan.day_scored()
            if outcome.scoring is not DayState.failed:
                outcome.scoring = DayState.failed
                outcome.reason += "not scored: its delivery failed"
            self._scored(due, outcome)

    def finished(self, fut: PrefectFuture[Any]) -> None:
        lane, what = self.running.pop(fut)
        value: Any = None
        error: Exception | None = None
        try:
            value = fut.result()
        except Exception as e:  # a day that fails is reported; the others go on
            error = e
        if lane == "stage":
            self._on_staged(what, value, error)
        elif lane == "commit":
            self._on_committed(what, value, error)
        else:
            self._on_scored(what, value, error, fut)

    def _ingest_failed(self, delivery: Delivery, reason: str) -> None:
        source, day = delivery
        outcome = self.outcomes[day]
        outcome.ingest = DayState.failed
        outcome.reason += f"{source} ingest failed: {reason}; "
        self.log.error("%s delivery %s failed: %s", source, day, reason)
        self._delivery_done(delivery, [], events=0)

    def _on_staged(self, delivery: Delivery, staged: Any, error: Exception | None) -> None:
        if error is not None:
            self._ingest_failed(delivery, str(error))
            return
        self.staged[delivery] = staged
        self.plan.staged.add(delivery)

    def _on_committed(self, delivery: Delivery, committed: Any, error: Exception | None) -> None:
        if error is not None:
            self._ingest_failed(delivery, str(error))
            return
        assert isinstance(committed, CommittedDelivery)
        outcome = self.outcomes[delivery[1]]
        for r in committed.refused:
            outcome.ingest = DayState.failed
            outcome.reason += f"{r.source_file} {r.reason}; "
            self.log.error("%s %s", r.source_file, r.reason)
        events = sum(r.rows_written for r in committed.reports)
        self._delivery_done(delivery, committed.event_dates, events)

    def _delivery_done(self, delivery: Delivery, event_dates: list[date], events: int) -> None:
        back = self.plan.delivery_done(delivery, event_dates)
        # A late event changes its own day and every later day whose windows include it.
        if back is not None and back < self.start:
            for d in days_between(back, self.start - timedelta(days=1)):
                if d not in self.outcomes:
                    why = "re-scored: late events in its windows"
                    self.outcomes[d] = DayOutcome(day=d, ingest=DayState.cached, reason=why)
        self.committed += 1
        emit(Progress("ingest", self.committed, self.deliveries, day=delivery[1], events=events))

    def _on_scored(
        self, day: date, summary: Any, error: Exception | None, fut: PrefectFuture[Any]
    ) -> None:
        self.plan.day_scored()
        outcome = self.outcomes[day]
        if error is not None:
            outcome.scoring = DayState.failed
            outcome.reason += f"scoring failed: {error}"
            self.log.error("scoring %s failed: %s", day, error)
        elif not summary.scored:
            outcome.summary = summary
            outcome.scoring = DayState.no_data
            outcome.reason += f"no events on {day}: nothing to score; "
        else:
            outcome.summary = summary
            cached = fut.state.name == "Cached"
            outcome.scoring = DayState.cached if cached else DayState.done
        self._scored(day, outcome)

    def _scored(self, day: date, outcome: DayOutcome) -> None:
        self.scored += 1
        summary = outcome.summary
        emit(
            Progress("score", self.scored, self.plan.scorings, day=day,
                     events=summary.events_in if summary else 0, note=outcome.reason)
        )  # fmt: skip

    def run(self) -> list[DayOutcome]:
        emit(Progress("ingest", 0, self.deliveries))
        emit(Progress("score", 0, self.plan.scorings))
        while True:
            self.submit_ready()
            if not self.running:
                assert self.plan.finished, self.plan
                break
            self.finished(next(as_completed(list(self.running))))
        return sorted(self.outcomes.values(), key=lambda o: o.day)


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
    result.days = _Work(paths, start, end, score_from, stage_slots, missing).run()
    result.seconds = round(time.perf_counter() - began, 3)
    return result

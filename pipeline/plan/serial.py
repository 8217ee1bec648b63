"""The plan of a run executed in this process, one step at a time: the same schedule and
the same steps as the Prefect flows, without Prefect (evaluation, tests, benchmarks).

A step runs when the plan submits it, so the run is the flow's with one worker: deliveries
stage and commit in (day, source) order, and each day is scored once every delivery that
may carry its events is in (late events wind scoring back, as in the flows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import date
from typing import Any

from pipeline.ingest.deliveries import StagedDelivery
from pipeline.plan import steps
from pipeline.plan.run import SOURCES, Outcome, PlanRun, days_between, landing_days
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import detect
from pipeline.store.version import code_version
from pipeline.store.warehouse import scorable
from schemas.flows import RunResult
from schemas.settings import Settings


class SerialLanes:
    """Lanes that run each step at once and hand back its finished future."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _now(self, step: Callable[..., Any], *args: Any) -> Future[Any]:
        done: Future[Any] = Future()
        try:
            done.set_result(step(self.settings, *args))
        except Exception as e:  # reported by the plan, like a failed task
            done.set_exception(e)
        return done

    def stage(
        self, source: str, day: date, run_id: str, done: dict[tuple[str, str], str]
    ) -> Future[Any]:
        return self._now(steps.stage, source, day, run_id, done)

    def commit(self, source: str, day: date, staged: StagedDelivery) -> Future[Any]:
        return self._now(steps.commit, source, day, staged)

    def score(self, day: date) -> Future[Any]:
        return self._now(steps.score_day, day)

    def next_done(self, running: Iterable[Outcome]) -> Outcome:
        return next(iter(running))  # all finished: the first submitted

    def cached(self, outcome: Outcome) -> bool:
        return False


def run_days(
    settings: Settings,
    start: date | None = None,
    end: date | None = None,
    score_from: date | None = None,
) -> RunResult:
    """Ingest and score ``[start, end]`` (default: every day of the landing folder) as the
    backfill flow does: recover the home, load the reference data, record missing
    deliveries, then the plan."""
    days = landing_days(settings)
    start = start or (days[0] if days else None)
    end = end or (days[-1] if days else None)
    if start is None or end is None:
        raise ValueError(f"no delivery days in {settings.landing}; give start and end")
    result = RunResult(flow="serial", start=start, end=end, code_version=code_version())
    steps.recover(settings)
    steps.reference(settings)
    missing = steps.record_missing_deliveries(settings, SOURCES, days_between(start, end))
    plan = PlanRun(settings, SerialLanes(settings), start, end, score_from or start, 1, missing)
    result.days = plan.run()
    return result


def score_days(
    settings: Settings, days: list[date], progress: Callable[[date, int, int], None] | None = None
) -> None:
    """Profile and detect each of ``days`` (already ingested), oldest first; a day with no
    data is not scored (see :func:`pipeline.store.warehouse.day_has_data`)."""
    for i, day in enumerate(sorted(days), start=1):
        if scorable(settings, day):
            build_profiles(settings, day)
            detect(settings, day)
        if progress is not None:
            progress(day, i, len(days))

"""Run the whole job over a landing folder for an evaluation: the plan the flows run
(:mod:`pipeline.plan.serial`, the same schedule and steps, in this process)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from pipeline.plan.progress import Progress, listening
from pipeline.plan.serial import run_days
from schemas.flows import RunResult
from schemas.settings import Settings

DayProgress = Callable[[date, int, int], None]
"""Called after each scored day with (day, days done, days to score in all)."""


def run_landing(settings: Settings, progress: DayProgress | None = None) -> RunResult:
    """Ingest and score every day of the landing folder, as a backfill would."""

    def scored(event: Progress) -> None:
        if progress is not None and event.phase == "score" and event.day is not None:
            progress(event.day, event.done, event.total)

    with listening(scored):
        return run_days(settings)

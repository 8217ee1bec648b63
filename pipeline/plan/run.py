"""One run over delivery days, on any executor: ingest the deliveries of ``[start, end]`` and
score every day in date order, the two overlapping, as :class:`~pipeline.plan.schedule.Schedule`
allows.

:class:`PlanRun` submits whatever the schedule says may start to a :class:`Lanes` (the
Prefect task runners of ``flows/work.py``, or :class:`pipeline.plan.serial.SerialLanes` in
this process) and records what finished, one :class:`~schemas.flows.DayOutcome` per day.
Three lanes overlap: staging (``stage_slots`` deliveries at a time, None: all),
committing and scoring (one at a time each).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, Protocol

from pipeline.ingest.deliveries import (
    CommittedDelivery,
    StagedDelivery,
    committed_files,
    delivery_days,
    delivery_files,
    new_run_id,
)
from pipeline.plan.progress import Progress, emit
from pipeline.plan.schedule import Delivery, Schedule
from pipeline.store.lake import home_lock
from schemas.flows import DayOutcome, DayState
from schemas.ingest import DeliveryReport
from schemas.settings import Settings

SOURCES = ("lrs", "npd")


class Outcome(Protocol):
    """What a lane returns for one piece of work: a future (Prefect's or the standard
    library's)."""

    def result(self) -> Any: ...


class Lanes(Protocol):
    """Where a run's work executes. ``stage``/``commit``/``score`` start one step of
    :mod:`pipeline.plan.steps` and return its future; ``next_done`` waits for the first of
    ``running`` to finish; ``cached`` says whether a finished score was skipped as done."""

    def stage(
        self, source: str, day: date, run_id: str, done: dict[tuple[str, str], str]
    ) -> Outcome: ...

    def commit(self, source: str, day: date, staged: StagedDelivery) -> Outcome: ...

    def score(self, day: date) -> Outcome: ...

    def next_done(self, running: Iterable[Outcome]) -> Outcome: ...

    def cached(self, outcome: Outcome) -> bool: ...


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(i) for i in range((end - start).days + 1)]


def landing_days(settings: Settings) -> list[date]:
    """Every day from the first to the last delivery day in the landing folder."""
    found = sorted({d for s in SOURCES for d in delivery_days(settings.landing, s)})
    return days_between(found[0], found[-1]) if found else []


def pending_deliveries(s: Settings, start: date, end: date) -> list[tuple[str, date, dict]]:
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


class PlanRun:
    """Submits whatever the :class:`~pipeline.plan.schedule.Schedule` says may start, and
    records what finished."""

    def __init__(
        self,
        settings: Settings,
        lanes: Lanes,
        start: date,
        end: date,
        score_from: date,
        stage_slots: int | None,
        missing: list[DeliveryReport] | None = None,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self.lanes, self.start = lanes, start
        s = settings
        self.log = log or logging.getLogger("accesswatch.plan")
        self.outcomes = {d: DayOutcome(day=d) for d in days_between(start, end)}
        for r in missing or []:
            outcome = self.outcomes[r.delivery_day]
            outcome.missing.append(r.source)
            outcome.reason += f"{r.source} delivery missing (no folder {r.source_file}); "
            self.log.warning("%s delivery %s is missing: %s", r.source, r.delivery_day, r.reason)
        pending = sorted(pending_deliveries(s, start, end), key=lambda p: (p[1], p[0]))
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
        self.running: dict[Outcome, tuple[str, Any]] = {}
        self.run_id = new_run_id()
        self.committed = self.scored = 0

    def _staging(self) -> int:
        return sum(1 for lane, _ in self.running.values() if lane == "stage")

    def submit_ready(self) -> None:
        while self.to_stage and (self.stage_slots is None or self._staging() < self.stage_slots):
            source, day, done = self.to_stage.pop(0)
            run_id = f"{self.run_id}-{source}-{day:%Y%m%d}"
            self.running[self.lanes.stage(source, day, run_id, done)] = ("stage", (source, day))
        delivery = self.plan.next_commit()
        if delivery is not None:
            commit = self.lanes.commit(*delivery, self.staged.pop(delivery))
            self.running[commit] = ("commit", delivery)
        while (due := self.plan.next_score()) is not None:
            outcome = self.outcomes[due]
            if outcome.ingest is not DayState.failed:
                self.running[self.lanes.score(due)] = ("score", due)
                return
            self.plan.day_scored()
            if outcome.scoring is not DayState.failed:
                outcome.scoring = DayState.failed
                outcome.reason += "not scored: its delivery failed"
            self._scored(due, outcome)

    def finished(self, fut: Outcome) -> None:
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

    def _on_scored(self, day: date, summary: Any, error: Exception | None, fut: Outcome) -> None:
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
            outcome.scoring = DayState.cached if self.lanes.cached(fut) else DayState.done
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
            self.finished(self.lanes.next_done(list(self.running)))
        return sorted(self.outcomes.values(), key=lambda o: o.day)

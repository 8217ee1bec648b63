"""What may start next in a run that ingests and scores at once: plain state, no Prefect.

Deliveries commit one at a time in (day, source) order, so that a re-delivered event keeps
its first delivered copy, as in a serial run. Days score one at a time in date order, day
D once every delivery up to D + ``late_days`` is in (committed or failed). A commit whose
events fall on a day already scored winds scoring back to that day (never before
``score_from``), and the days from there on are scored again, in order. So the last
scoring of every day sees every event of its windows, as if everything had been ingested
first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

Delivery = tuple[str, date]  # (source, delivery day)


@dataclass
class Schedule:
    start: date
    end: date
    score_from: date
    late_days: int
    unfinished: set[Delivery] = field(default_factory=set)
    staged: set[Delivery] = field(default_factory=set)
    committing: Delivery | None = None
    scoring: date | None = None
    cursor: date = field(init=False)  # the next day to score
    scorings: int = field(init=False)  # days to score in all, counting the ones wound back

    def __post_init__(self) -> None:
        self.cursor = self.start
        self.scorings = (self.end - self.start).days + 1

    @property
    def finished(self) -> bool:
        return not self.unfinished and self.scoring is None and self.cursor > self.end

    def next_commit(self) -> Delivery | None:
        """The delivery to commit now: the first unfinished one, once it is staged."""
        if self.committing is not None or not self.unfinished:
            return None
        first = min(self.unfinished, key=lambda k: (k[1], k[0]))
        if first not in self.staged:
            return None
        self.staged.discard(first)
        self.committing = first
        return first

    def next_score(self) -> date | None:
        """The day to score now, once every delivery that may carry its events is in."""
        if self.scoring is not None or self.cursor > self.end:
            return None
        horizon = self.cursor + timedelta(days=self.late_days)
        if any(day <= horizon for _, day in self.unfinished):
            return None
        self.scoring, self.cursor = self.cursor, self.cursor + timedelta(days=1)
        return self.scoring

    def delivery_done(self, delivery: Delivery, event_dates: Iterable[date] = ()) -> date | None:
        """A delivery committed (with events on ``event_dates``) or failed. Returns the day
        scoring winds back to when its events fall on a day already scored or scoring."""
        self.unfinished.discard(delivery)
        self.staged.discard(delivery)
        if self.committing == delivery:
            self.committing = None
        back = min((d for d in event_dates if self.score_from <= d < self.cursor), default=None)
        if back is not None:
            self.scorings += (self.cursor - back).days
            self.cursor = back
        return back

    def day_scored(self) -> None:
        self.scoring = None

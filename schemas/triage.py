"""Triage: an analyst's verdict on a flagged organisation, one immutable record per decision.

Decisions are append-only: a new decision on an organisation supersedes the previous one
(the latest ``decided_at`` is in force); none is ever changed or deleted. Each is stored as
one JSON file ``<home>/triage/<decision_id>.json`` (see :mod:`pipeline.triage.verdicts`) and read
back through :class:`TriageDecision`, so a file that does not validate is refused by name.

How verdicts change the ranked list is documented in :mod:`pipeline.triage.verdicts`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Verdict(StrEnum):
    """What an analyst concluded about an organisation."""

    misuse = "misuse"  # pinned at the top of every later list, status "misuse"
    legitimate = "legitimate"  # suppressed until --until or until its behaviour changes
    needs_info = "needs_info"  # listed as usual, status "needs_info"
    data_issue = "data_issue"  # listed as usual, status "data_issue"


class TriageDecision(BaseModel):
    """One verdict on one organisation, as recorded (never updated in place).

    ``day`` is the ranked-list day the analyst looked at; ``score_at_decision`` and
    ``rules_at_decision`` are the organisation's score and the rules that fired for it on
    that day, read from the warehouse when the decision was recorded (the baseline a
    ``legitimate`` verdict is measured against). ``score_at_decision`` is None when the
    warehouse could not be read then (a nightly job held it) or the org had no score that
    day; the baseline is then read from ``day``'s results when the list is read.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    decision_id: str = Field(
        pattern=r"^[0-9A-Za-z_-]{8,80}$",
        description="Unique, time-ordered id; also the file name (``<decision_id>.json``)",
    )
    org_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_.-]+$")
    verdict: Verdict
    note: str = Field(min_length=1, max_length=4_000, description="Why: the analyst's words")
    analyst: str = Field(min_length=1, max_length=128)
    decided_at: datetime = Field(description="When the decision was recorded (UTC)")
    until: date | None = Field(
        default=None, description="Last ranked-list day the verdict applies to (inclusive)"
    )
    day: date | None = Field(default=None, description="The ranked-list day it was made against")
    score_at_decision: float | None = Field(default=None, ge=0, le=100)
    rules_at_decision: list[str] = Field(default_factory=list)

    @field_validator("decided_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError(f"decided_at must carry a time zone (UTC), got {v.isoformat()}")
        return v.astimezone(UTC)

    @field_validator("rules_at_decision")
    @classmethod
    def _sorted_rules(cls, v: list[str]) -> list[str]:
        return sorted(set(v))

    @model_validator(mode="after")
    def _until_after_day(self) -> TriageDecision:
        if self.until is not None and self.day is not None and self.until < self.day:
            raise ValueError(
                f"until ({self.until}) must not be before the day the verdict is made "
                f"against ({self.day})"
            )
        return self

    def order_key(self) -> tuple[datetime, str]:
        """Oldest first: by ``decided_at``, then ``decision_id`` (unique)."""
        return (self.decided_at, self.decision_id)

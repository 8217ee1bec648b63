"""Flow parameters and what flows report: the nightly run and the backfill.

Flows take paths, never settings objects: each task builds its settings where it runs
(a thread, another process or a Dask worker on another machine), from the same config file
and ``ACCESSWATCH_*`` environment, so the pseudonym key never travels as a parameter.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from schemas.settings import Settings, load_settings


class JobPaths(BaseModel):
    """Where a job's state and input live (None = from env / TOML / defaults)."""

    home: Path | None = None
    landing: Path | None = None
    config: Path | None = None

    def settings(self) -> Settings:
        return load_settings(self.config, home=self.home, landing=self.landing)

    @classmethod
    def resolved(cls, home: Path | None, landing: Path | None, config: Path | None) -> JobPaths:
        """Absolute paths, so that workers started elsewhere find the same folders."""
        for name, path in (("home", home), ("landing", landing), ("config", config)):
            if path is not None and "{{" in str(path):
                raise ValueError(f"{name} {path} holds an unfilled template placeholder")
        s = load_settings(config, home=home, landing=landing)
        return cls(
            home=s.home.resolve(),
            landing=s.landing.resolve(),
            config=config.resolve() if config else None,
        )


class DaySummary(BaseModel):
    """One day of a run: what came in, what was set aside, and what was flagged."""

    day: date
    events_in: int = Field(default=0, ge=0, description="Rows written from this day's deliveries")
    duplicates: int = Field(default=0, ge=0)
    quarantined: int = Field(default=0, ge=0)
    quarantine_reasons: dict[str, int] = Field(default_factory=dict)
    late_events: int = Field(default=0, ge=0)
    refused: list[str] = Field(default_factory=list, description="file: reason")
    suspects: int = Field(default=0, ge=0, description="Rows in the day's ranked list")
    new_suspects: list[str] = Field(
        default_factory=list, description="Orgs in the top list flagged for the first time"
    )
    rules_fired: dict[str, int] = Field(default_factory=dict, description="rule id -> orgs")
    top_org: str = ""
    top_score: float | None = None
    scored: bool = Field(
        default=True,
        description="False: no events of the day in the lake and no delivery committed for "
        "it, so nothing was scored (no ranked list)",
    )


class DayState(StrEnum):
    done = "done"
    cached = "cached"  # finished by an earlier run with the same inputs and code
    failed = "failed"
    missing = "missing"  # ingest: a source's delivery folder is absent (not a failure)
    no_data = "no data"  # scoring: no events and no delivery for the day, nothing to score


class DayOutcome(BaseModel):
    """How one day of a backfill ended."""

    day: date
    ingest: DayState = DayState.done
    scoring: DayState | None = None
    reason: str = ""
    summary: DaySummary | None = None
    missing: list[str] = Field(
        default_factory=list, description="Sources with no delivery folder for the day"
    )

    @property
    def failed(self) -> bool:
        return DayState.failed in (self.ingest, self.scoring)


class RunResult(BaseModel):
    """The outcome of a nightly or backfill run, day by day."""

    flow: str
    start: date
    end: date
    code_version: str
    days: list[DayOutcome] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[DayOutcome]:
        return [d for d in self.days if d.failed]

    @property
    def missing(self) -> list[str]:
        """``<source> <day>`` of every delivery that did not arrive, oldest first."""
        return [f"{source} {d.day}" for d in self.days for source in d.missing]

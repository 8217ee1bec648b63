"""Run the whole job over days, in plain function calls (the flows wrap the same steps).

Order matters: every delivery is ingested first (late events land in earlier days), then
days are profiled and scored in date order, because windows need the days before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from pipeline.ingest.deliveries import delivery_days, ingest
from pipeline.ingest.reference import load_reference
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import detect
from pipeline.store.warehouse import scorable
from schemas.ingest import IngestReport
from schemas.settings import Settings

DayProgress = Callable[[date, int, int], None]
"""Called after each scored day with (day, days done, days in total)."""


@dataclass
class RunSummary:
    """What one run over a landing folder did."""

    ingests: list[IngestReport] = field(default_factory=list)
    days: list[date] = field(default_factory=list)


def landing_days(settings: Settings) -> list[date]:
    """Every day from the first to the last delivery day in the landing folder."""
    found = sorted({d for s in ("lrs", "npd") for d in delivery_days(settings.landing, s)})
    if not found:
        return []
    return [found[0] + timedelta(i) for i in range((found[-1] - found[0]).days + 1)]


def ingest_everything(settings: Settings) -> list[IngestReport]:
    """Load reference data and ingest every LRS and NPD delivery of the landing folder."""
    load_reference(settings)
    return [ingest(settings, source, None) for source in ("lrs", "npd")]


def score_days(settings: Settings, days: list[date], progress: DayProgress | None = None) -> None:
    """Profile and detect each day, oldest first; a day with no data is not scored (see
    :func:`pipeline.store.warehouse.day_has_data`)."""
    for i, day in enumerate(sorted(days), start=1):
        if scorable(settings, day):
            build_profiles(settings, day)
            detect(settings, day)
        if progress is not None:
            progress(day, i, len(days))


def run_landing(settings: Settings, progress: DayProgress | None = None) -> RunSummary:
    """Ingest a whole landing folder, then profile and score every day it covers."""
    summary = RunSummary(ingests=ingest_everything(settings), days=landing_days(settings))
    score_days(settings, summary.days, progress)
    return summary

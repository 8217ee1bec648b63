"""The steps of a run, as plain functions of the settings: each one takes the home's writer
lock for as long as it writes, and nothing more. The Prefect tasks (``flows/tasks.py``) wrap
them one to one, adding retries and caching; :mod:`pipeline.plan.serial` calls them
directly."""

from __future__ import annotations

import contextlib
from datetime import date

from pipeline.ingest.deliveries import (
    CommittedDelivery,
    StagedDelivery,
    commit_delivery,
    new_run_id,
    prepare_delivery,
    recover_home,
    stage_delivery,
)
from pipeline.ingest.reference import load_reference
from pipeline.outputs.summary import day_summary
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import NoEventsError, detect
from pipeline.store.lake import home_lock
from pipeline.store.warehouse import connect, day_has_data, record_missing
from schemas.flows import DaySummary
from schemas.ingest import DeliveryReport
from schemas.settings import Settings


def recover(s: Settings) -> list[str]:
    """Roll back any commit a killed run left in flight; clear stale staging."""
    with home_lock(s.home, s.step_lock_wait_seconds, purpose="recover"):
        return recover_home(s)


def record_missing_deliveries(
    s: Settings, sources: tuple[str, ...], days: list[date]
) -> list[DeliveryReport]:
    """Record in the ledger every delivery of ``days`` whose folder is absent (see
    :func:`pipeline.store.warehouse.record_missing`); return them. A missing delivery is not a
    failure: the day is still scored from what else came in."""
    run_id = new_run_id()
    with home_lock(s.home, s.step_lock_wait_seconds, purpose="record missing deliveries"):
        return [r for source in sources for r in record_missing(s, source, days, run_id)]


def reference(s: Settings) -> list[DeliveryReport]:
    """Load organisations and agreements."""
    return load_reference(s, lock_wait_seconds=s.step_lock_wait_seconds)


def stage(
    s: Settings, source: str, day: date, run_id: str, done: dict[tuple[str, str], str]
) -> StagedDelivery:
    """Read, validate and pseudonymise one delivery day into staging. Takes no lock, so
    deliveries stage in parallel. ``done`` lists committed files, which are not read again."""
    return stage_delivery(s, source, day, run_id, done)


def commit(s: Settings, source: str, day: date, staged: StagedDelivery) -> CommittedDelivery:
    """Commit a staged delivery day. Runs commit one delivery at a time in date order, so
    the copy of an event kept is the first delivered, as in a serial run. Duplicates are
    dropped before the writer lock is taken (a day being scored holds it); under the lock
    the files move into the lake and the ledger is written."""
    staged = prepare_delivery(s, staged)
    with home_lock(s.home, s.step_lock_wait_seconds, purpose=f"commit {source} {day}"):
        return commit_delivery(s, staged)


def score_day(s: Settings, day: date) -> DaySummary:
    """Profile and detect one day (its 28-day windows need the days before it).

    A day with no events in the lake and no delivery committed for it is not scored
    (``scored`` False; see :func:`pipeline.store.warehouse.day_has_data`).
    """
    with home_lock(s.home, s.step_lock_wait_seconds, purpose=f"check {day}"), connect(s) as con:
        has_data = day_has_data(con, s.home, day)
    if not has_data:
        # detect clears any list a day with no data was given before, then says so
        with contextlib.suppress(NoEventsError):
            detect(s, day, lock_wait_seconds=s.step_lock_wait_seconds)
        return DaySummary(day=day, scored=False)
    build_profiles(s, day, lock_wait_seconds=s.step_lock_wait_seconds)
    detect(s, day, lock_wait_seconds=s.step_lock_wait_seconds)
    # Under the lock: a commit in another thread of this process may be writing the
    # warehouse, and DuckDB will not open it read-only beside a writing connection.
    with home_lock(s.home, s.step_lock_wait_seconds, purpose=f"summary {day}"):
        return day_summary(s, day)

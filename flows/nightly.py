"""The nightly flow: yesterday's deliveries in, late days re-scored, suspects published."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.states import State

from flows import tasks
from flows.alerts import send_alerts
from flows.artifacts import publish
from flows.backfill import finish, missing_lines
from flows.work import process_days
from pipeline.store.lake import run_lock
from schemas.detection import REPORT_TOP
from schemas.flows import JobPaths, RunResult


def yesterday(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date() - timedelta(days=1)


@flow(name="accesswatch-nightly")
def nightly(
    run_date: date | None = None,
    home: Path | None = None,
    landing: Path | None = None,
    config: Path | None = None,
    lock_wait_seconds: float = 0.0,
    top: int = REPORT_TOP,
) -> State:
    """Load reference data, ingest ``run_date``'s deliveries (default: yesterday in the
    configured time zone), re-score days touched by late events, detect, rank, publish,
    then send the day's alerts (``[alerts]``; see docs/operations.md, "Alerts").

    Ends Failed, naming the file and reason, when a delivery is refused. A delivery whose
    folder is absent is *missing*: recorded in the ledger, logged as a warning, listed in
    the summary artifact and the final message; the run still scores the day from what
    else came in and ends Completed (see docs/operations.md, "A missing delivery").
    """
    paths = JobPaths.resolved(home, landing, config)
    s = paths.settings()
    day = run_date or yesterday(s.timezone)
    with run_lock(s.home, lock_wait_seconds, purpose=f"nightly {day}"):
        result: RunResult = process_days(
            paths, day, day, score_from=day - timedelta(days=s.rescore_max_days)
        )
        result.flow = "nightly"
        html = tasks.report(paths, day, top)
        publish(paths, day, result, missing_lines(s.landing, result), top, report=html)
        # Alerts last, once the report they link to exists; their failure is not the run's.
        sent = send_alerts(paths, day, return_state=True)
        if sent.is_failed():
            get_run_logger().warning("alerts of %s failed: %s (the run goes on)", day, sent.message)
    return finish(result)

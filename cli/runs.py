"""``accesswatch backfill``, ``nightly``, ``serve`` and ``demo``: the Prefect flows of
``flows/``, run from here with a progress bar and a summary table."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.options import (
    ConfigOpt,
    HomeOpt,
    LandingOpt,
    WaitOpt,
    console,
    err,
    fail,
    settings,
)
from cli.scoring import By, print_suspects
from pipeline.outputs.safe_text import line, text
from schemas.detection import LIST_TOP
from schemas.flows import JobPaths, RunResult

StartOpt = Annotated[
    datetime | None,
    typer.Option("--start", formats=["%Y-%m-%d"], help="First delivery day (default: first)."),
]
EndOpt = Annotated[
    datetime | None,
    typer.Option("--end", formats=["%Y-%m-%d"], help="Last delivery day (default: last)."),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1, help="Local Dask worker processes for ingest (1: in this process)."
    ),
]
DaskOpt = Annotated[
    str | None,
    typer.Option("--dask-address", help="Run tasks on an existing Dask cluster, tcp://host:port."),
]


def _prefect_quiet() -> None:
    """Prefect logs at WARNING on the console unless the user asked for more, and a
    temporary server (no PREFECT_API_URL) gets 120 s to start instead of Prefect's 20, which
    a busy 2-core machine can exceed."""
    import os

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows.server import temporary_server_dies_with_us

    temporary_server_dies_with_us()


def _run_backfill(
    paths: JobPaths,
    start: date | None,
    end: date | None,
    workers: int | None,
    dask_address: str | None,
    wait: float,
) -> RunResult:
    """Run the backfill flow here with a progress bar; print its summary table."""
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    _prefect_quiet()
    from flows.backfill import backfill
    from pipeline.plan.progress import Progress, listening

    began = time.monotonic()
    events = 0
    with Bar(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        bars: dict[str, Any] = {}

        def on_progress(p: Progress) -> None:
            nonlocal events
            events += p.events
            if p.phase not in bars:
                label = "ingest" if p.phase == "ingest" else "days"
                bars[p.phase] = bar.add_task(label, total=p.total or None, rate="")
            rate = events / max(time.monotonic() - began, 1e-9)
            bar.update(bars[p.phase], completed=p.done, total=p.total, rate=f"{rate:,.0f} ev/s")

        with listening(on_progress):
            state = backfill(
                start=start,
                end=end,
                home=paths.home,
                landing=paths.landing,
                config=paths.config,
                workers=workers,
                dask_address=dask_address,
                lock_wait_seconds=wait,
                return_state=True,
            )
    outcome = _run_result(state)
    _print_run(outcome, time.monotonic() - began)
    return outcome


def _run_result(state: Any) -> RunResult:
    """The RunResult a flow ended with, or a clear error when it raised instead."""
    outcome = state.result(raise_on_failure=False)
    if not isinstance(outcome, RunResult):
        fail(str(outcome) if isinstance(outcome, BaseException) else state.message or "failed")
    return outcome


def _print_run(result: RunResult, seconds: float, max_rows: int = 60) -> None:
    title = f"{result.flow} {result.start} .. {result.end} (code {result.code_version})"
    table = Table(title=text(title))
    for col in ("day", "ingest", "scoring", "events in", "quarantined", "late", "suspects",
                "top (score)", "note"):  # fmt: skip
        table.add_column(col, justify="right" if col in ("events in", "quarantined", "late",
                         "suspects") else "left", overflow="fold")  # fmt: skip
    days = result.days
    shown = days if len(days) <= max_rows else [*days[:5], *result.failed, *days[-5:]]
    for d in sorted({d.day: d for d in shown}.values(), key=lambda d: d.day):
        s = d.summary
        top = f"{s.top_org} ({s.top_score:.0f})" if s and s.top_score is not None else "-"
        table.add_row(
            str(d.day),
            d.ingest.value,
            d.scoring.value if d.scoring else "-",
            f"{s.events_in:,}" if s else "-",
            f"{s.quarantined:,}" if s else "-",
            f"{s.late_events:,}" if s else "-",
            f"{s.suspects:,}" if s else "-",
            text(top),
            text(d.reason.strip("; ")),
            style="red" if d.failed else None,
        )
    if len(shown) < len(days):
        table.caption = f"{len(days) - len(shown)} more days done; failed days are all shown"
    console.print(table)
    done = sum(1 for d in days if not d.failed)
    events = sum(d.summary.events_in for d in days if d.summary)
    console.print(
        f"{done} of {len(days)} days done, {len(result.failed)} failed; "
        f"{events:,} events in {seconds:,.1f} s ({events / max(seconds, 1e-9):,.0f} events/s)",
        highlight=False,
    )
    if result.missing:
        err.print(
            f"[bold yellow]WARNING:[/] {len(result.missing)} delivery(ies) missing (no folder "
            f"in the landing folder): {', '.join(result.missing)}",
            highlight=False,
        )


def _day_or_none(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def _paths(home: Path | None, landing: Path | None, config: Path | None) -> JobPaths:
    settings(config, home=home, landing=landing)  # a clear error for bad settings, here
    return JobPaths.resolved(home, landing, config)


def backfill_cmd(
    start: StartOpt = None,
    end: EndOpt = None,
    workers: WorkersOpt = None,
    dask_address: DaskOpt = None,
    wait: WaitOpt = 0.0,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Ingest and score a range of delivery days through Prefect, resumably.

    Deliveries are staged in parallel (--workers N starts a local Dask cluster,
    --dask-address uses an existing one) and committed in date order; meanwhile days are
    profiled and scored in date order, day D once the deliveries up to D +
    late_delivery_days are in (a later late event re-scores it), one ranked list per day.
    Finished work is skipped on a re-run; a day that fails is reported and the others
    complete (exit code 1).
    """
    paths = _paths(home, landing, config)
    result = _run_backfill(
        paths, _day_or_none(start), _day_or_none(end), workers, dask_address, wait
    )
    if result.failed:
        raise typer.Exit(1)


def nightly_cmd(
    day: Annotated[
        datetime | None,
        typer.Option("--day", formats=["%Y-%m-%d"], help="Run date (default: yesterday)."),
    ] = None,
    wait: WaitOpt = 0.0,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the nightly flow once, now (what the served schedule runs at 02:30).

    Exits 1 when a delivery is refused or a day fails. A missing delivery (no folder for a
    source) prints a WARNING line and is listed in the summary artifact, but exits 0: the
    day is scored from what else came in (see docs/operations.md).
    """
    _prefect_quiet()
    from flows.nightly import nightly

    paths = _paths(home, landing, config)
    state = nightly(
        run_date=_day_or_none(day),
        home=paths.home,
        landing=paths.landing,
        config=paths.config,
        lock_wait_seconds=wait,
        return_state=True,
    )
    outcome = _run_result(state)
    _print_run(outcome, outcome.seconds)
    if outcome.failed:
        err.print(line(("nightly failed:", "bold red"), " ", str(state.message)))
        raise typer.Exit(1)


def serve_cmd(
    cron: Annotated[
        str | None,
        typer.Option("--cron", help="Nightly schedule (default 30 2 * * *, or nightly_cron)."),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="Schedule time zone (default: timezone).")
    ] = None,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the nightly (scheduled) and backfill deployments until stopped (Ctrl-C).

    Needs a Prefect server (PREFECT_API_URL); see docs/operations.md.
    """
    from flows.deploy import serve_deployments

    effective = settings(config, home=home, landing=landing)
    paths = JobPaths.resolved(home, landing, config)
    serve_deployments(paths, cron or effective.nightly_cron, timezone or effective.timezone)


def demo_cmd(
    top: Annotated[
        int, typer.Option("--top", min=1, help="How many suspects to print.")
    ] = LIST_TOP,
    workers: WorkersOpt = None,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Backfill a landing folder through Prefect and print the last day's suspects.

    Loads reference data, ingests every delivery, then profiles and scores every day.
    `make demo` runs it on the committed sample (data/sample/).
    """
    from pipeline.rank.listing import suspects

    paths = _paths(home, landing, config)
    result = _run_backfill(paths, None, None, workers, None, 0.0)
    last = max(d.day for d in result.days if not d.failed and d.scoring != "no data")
    console.print(f"[bold]Suspects on {last}[/] (top {top} of all organisations)")
    print_suspects(suspects(paths.settings(), last, top=top, by="org"), By.org)

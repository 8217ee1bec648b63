"""The ``accesswatch`` command line: thin wiring of ``pipeline/`` (and, later, ``flows/``)."""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
import typer.core
from rich.table import Table

from pipeline.outputs.safe_text import console as make_console
from pipeline.outputs.safe_text import csv_cell, line, markup, text, visible
from schemas.flows import JobPaths, RunResult
from schemas.settings import Settings, load_settings

if TYPE_CHECKING:
    from schemas.detection import Suspect
    from schemas.triage import TriageDecision


class _Group(typer.core.TyperGroup):
    """Every command: a home or warehouse busy beyond the wait is one line, exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        from pipeline.store.lake import HomeBusy

        try:
            return super().invoke(ctx)
        except HomeBusy as e:
            err.print(line(("error:", "bold red"), " ", str(e)))
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    name="accesswatch",
    help="Watch how organisations use the LRS and NPD, and rank suspected misuse with reasons.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help paragraphs reflow to the terminal width
)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
# Every data string printed goes through pipeline/outputs/safe_text.py: ``text``/``line`` (never
# parsed as markup) or ``markup`` (escaped) - names, file names and notes may hold "[/]",
# ESC sequences or bidi overrides.
console = make_console()
err = make_console(stderr=True)

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home", help="State folder (lake, quarantine, warehouse). Env ACCESSWATCH_HOME."
    ),
]
LandingOpt = Annotated[
    Path | None,
    typer.Option("--landing", help="Raw delivery folder. Env ACCESSWATCH_LANDING."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="TOML settings file. Env ACCESSWATCH_CONFIG."),
]


class Source(StrEnum):
    lrs = "lrs"
    npd = "npd"


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **overrides)
    except Exception as e:  # pydantic ValidationError or a missing file: both user errors
        _fail(f"invalid settings: {e}")
        raise  # unreachable; keeps type checkers content


def _fail(message: str, code: int = 2) -> None:
    """Print ``message`` (plain text, never markup: it may quote data) and exit."""
    err.print(line(("error:", "bold red"), " ", text(message, newlines=True)))
    raise typer.Exit(code)


def _write_error(e: OSError, path: Path | str) -> str:
    """One line for an output path that cannot be written (missing folder, read-only,
    full disk), naming the path."""
    return f"cannot write {e.filename or path}: {e.strerror or e}"


@config_app.command("show")
def config_show(home: HomeOpt = None, landing: LandingOpt = None, config: ConfigOpt = None) -> None:
    """Print the effective settings (flags > env > TOML file > defaults), secrets masked."""
    settings = _settings(config, home=home, landing=landing)
    console.print_json(json.dumps(settings.masked()))


@app.command("ingest")
def ingest_cmd(
    source: Annotated[Source, typer.Option("--source", help="Which log to ingest.")],
    day: Annotated[
        list[str] | None,
        typer.Option("--day", help="Delivery day YYYY-MM-DD (repeatable)."),
    ] = None,
    all_days: Annotated[
        bool, typer.Option("--all", help="Every delivery day in the landing folder.")
    ] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait if another run holds the home.")
    ] = 0.0,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Validate, pseudonymise and load delivery files into the Parquet lake.

    Exits 1 when a delivery is refused (its reason is printed); the other files are kept.
    A day without the source's delivery folder is recorded as missing, with a WARNING.
    """
    from pipeline.ingest.deliveries import HomeWriteError, ingest, unexpected_entries
    from pipeline.store.lake import HomeBusy

    settings = _settings(config, home=home, landing=landing)
    if bool(day) == all_days:
        _fail("give either --day (one or more) or --all")
    days = None if all_days else [_parse_day(d) for d in day or []]
    try:
        report = ingest(settings, source.value, days, lock_wait_seconds=wait)
    except (HomeBusy, HomeWriteError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
        return
    for warning in unexpected_entries(settings.landing, source.value):
        err.print(line(("WARNING:", "bold yellow"), " ", warning))
    table = Table(title=f"ingest {source.value}: run {report.run_id}")
    for col in ("file", "status", "read", "written", "duplicates", "quarantined", "late"):
        table.add_column(col, justify="left" if col in ("file", "status") else "right")
    for d in report.deliveries:
        colour = {"committed": "green", "skipped": "dim", "refused": "red", "missing": "yellow"}[
            d.status.value
        ]
        table.add_row(
            text(d.source_file),
            text(d.status.value, colour),
            f"{d.rows_read:,}",
            f"{d.rows_written:,}",
            f"{d.duplicates:,}",
            f"{d.quarantined:,}",
            f"{d.late_events:,}",
        )
    console.print(table)
    for d in report.missing:
        err.print(
            line(("WARNING: missing", "bold yellow"), f" {d.source} {d.delivery_day}: ", d.reason)
        )
    for d in report.refused:
        err.print(line(("refused", "bold red"), " ", d.source_file, ": ", d.reason))
    if report.refused:
        raise typer.Exit(1)


@app.command("load-reference")
def load_reference_cmd(
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait if another run holds the home.")
    ] = 0.0,
    allow_bad_rows: Annotated[
        bool,
        typer.Option(
            "--allow-bad-rows",
            help="Load the good rows when some rows are bad (each bad row is quarantined "
            "and named in a warning). Without it, any bad row refuses the load (exit 1).",
        ),
    ] = False,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Validate and load reference/organisations.csv and reference/agreements.csv.

    Only the fields the contract requires must have a value (see the README's data
    contract); a row that breaks the contract refuses the whole load, naming file, line
    and field, unless --allow-bad-rows is given."""
    from pipeline.ingest.reference import (
        BadReferenceRows,
        ReferenceError,
        load_reference,
        reference_problems,
    )
    from pipeline.store.lake import HomeBusy

    settings = _settings(config, home=home, landing=landing)
    try:
        reports = load_reference(settings, lock_wait_seconds=wait, allow_bad_rows=allow_bad_rows)
    except BadReferenceRows as e:
        _fail(f"{e}\n(nothing was loaded; fix the rows or use --allow-bad-rows)", code=1)
        return
    except (ReferenceError, HomeBusy) as e:
        _fail(str(e), code=1)
        return
    for p in reference_problems(settings) if allow_bad_rows else []:
        err.print(line(("WARNING: quarantined", "bold yellow"), " ", p.describe()))
    for r in reports:
        console.print(
            line(
                r.source_file,
                f": {r.rows_read:,} read, {r.rows_written:,} loaded, "
                f"{r.duplicates:,} duplicates, {r.quarantined:,} quarantined",
            )
        )


@app.command("generate")
def generate_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for landing/ and truth/.")],
    orgs: Annotated[int, typer.Option("--orgs", help="Organisations in the register.")] = 400,
    days: Annotated[int, typer.Option("--days", help="Days of events.")] = 42,
    start: Annotated[str, typer.Option("--start", help="First day YYYY-MM-DD.")] = "2026-08-10",
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same bytes).")] = 7,
    malformed_rate: Annotated[
        float, typer.Option("--malformed-rate", help="Share of deliberately malformed rows.")
    ] = 0.0,
    volume_scale: Annotated[
        float, typer.Option("--volume-scale", help="Multiplier on normal LRS volumes.")
    ] = 1.0,
    scenario_scale: Annotated[
        float, typer.Option("--scenario-scale", help="Multiplier on misuse intensities.")
    ] = 1.0,
    real_feed_quirks: Annotated[
        bool,
        typer.Option(
            "--real-feed-quirks",
            help="Write what real feeds send: header-only files on quiet days, NPD-only "
            "organisations with empty learner counts, empty optional register fields, "
            "callers missing from the register, shuffled and extra columns.",
        ),
    ] = False,
) -> None:
    """Write a synthetic LRS/NPD world: a landing folder plus truth/labels.csv and decoys.csv."""
    from rich.progress import Progress

    from evaluation.generate import generate_world
    from schemas.generate import RealFeedQuirks, WorldConfig

    try:
        config = WorldConfig(
            orgs=orgs,
            days=days,
            start=_parse_day(start),
            seed=seed,
            malformed_rate=malformed_rate,
            volume_scale=volume_scale,
            scenario_scale=scenario_scale,
            real_feed=RealFeedQuirks(enabled=real_feed_quirks),
        )
    except ValueError as e:
        _fail(str(e))
        return
    try:
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("generating days", total=days)
            summary = generate_world(
                out, config, progress=lambda done, _: bar.update(task, completed=done)
            )
    except OSError as e:
        _fail(_write_error(e, out))
        return
    console.print(
        line(
            f"wrote {summary.orgs:,} organisations, {summary.lrs_events:,} LRS and "
            f"{summary.npd_events:,} NPD events over {summary.days} days to {out}/landing; "
            f"{summary.malformed_rows:,} malformed rows, {summary.duplicate_rows:,} "
            f"duplicates; answers in {out}/truth"
        )
    )


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
    from flows.progress import Progress, listening

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
        _fail(str(outcome) if isinstance(outcome, BaseException) else state.message or "failed")
    assert isinstance(outcome, RunResult)
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
WaitOpt = Annotated[
    float,
    typer.Option("--wait", min=0, help="Seconds to wait when another job holds the home."),
]


def _day_or_none(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def _paths(home: Path | None, landing: Path | None, config: Path | None) -> JobPaths:
    _settings(config, home=home, landing=landing)  # a clear error for bad settings, here
    return JobPaths.resolved(home, landing, config)


@app.command("backfill")
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


@app.command("nightly")
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


@app.command("serve")
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

    settings = _settings(config, home=home, landing=landing)
    paths = JobPaths.resolved(home, landing, config)
    serve_deployments(paths, cron or settings.nightly_cron, timezone or settings.timezone)


@app.command("demo")
def demo_cmd(
    top: Annotated[int, typer.Option("--top", min=1, help="How many suspects to print.")] = 20,
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
    _print_suspects(suspects(paths.settings(), last, top=top, by="org"), By.org)


DayOpt = Annotated[str, typer.Option("--day", help="Day YYYY-MM-DD (Europe/London).")]


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class By(StrEnum):
    org = "org"
    account = "account"


@app.command("profile")
def profile_cmd(
    day: DayOpt,
    wait: WaitOpt = 0.0,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Build every organisation's usage profile (1/7/28-day features) for one day.

    A day with no events in the lake and no delivery committed has nothing to profile.
    """
    from pipeline.profile.build import build_profiles
    from pipeline.store.warehouse import scorable

    settings = _settings(config, home=home, landing=landing)
    when = _parse_day(day)
    if not scorable(settings, when):
        console.print(f"no events on {when}: nothing to score", highlight=False)
        return
    report = build_profiles(settings, when, lock_wait_seconds=wait)
    console.print(
        f"{report.day}: {report.organisations:,} organisations "
        f"({report.active_organisations:,} active), {report.accounts:,} accounts, "
        f"{report.events_today:,} events, {report.seconds:.1f} s"
    )


@app.command("detect")
def detect_cmd(
    day: DayOpt,
    wait: WaitOpt = 0.0,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Score every organisation and account of a profiled day; store scores and reasons.

    A day with no events in the lake and no delivery committed gets no ranked list.
    """
    from pipeline.rank.detect import NoEventsError, detect
    from pipeline.rank.listing import NotProfiledError

    settings = _settings(config, home=home, landing=landing)
    try:
        report = detect(settings, _parse_day(day), lock_wait_seconds=wait)
    except NoEventsError as e:
        console.print(str(e), highlight=False)
        return
    except NotProfiledError as e:
        _fail(str(e))
        return
    console.print(
        f"{report.day}: scored {report.organisations:,} organisations and "
        f"{report.accounts:,} accounts; {report.rule_hits:,} rule hits "
        f"({report.hard_facts:,} hard facts); {report.suspects:,} suspects; "
        f"{report.seconds:.1f} s"
    )


@app.command("suspects")
def suspects_cmd(
    day: DayOpt,
    top: Annotated[int, typer.Option("--top", min=1, help="How many to list.")] = 20,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
    by: Annotated[By, typer.Option("--by", help="Rank organisations or accounts.")] = By.org,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print the ranked list of suspect organisations (or accounts) as of a day."""
    from pipeline.rank.listing import NotProfiledError, suspects
    from pipeline.triage.verdicts import TriageFileError

    settings = _settings(config, home=home)
    try:
        rows = suspects(settings, _parse_day(day), top=top, by=by.value)
    except (NotProfiledError, TriageFileError) as e:
        _fail(str(e))
        return
    if fmt is Format.json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
    elif fmt is Format.csv:
        _print_csv(rows)
    else:
        _print_suspects(rows, by)


def _print_csv(rows: list[Suspect]) -> None:
    import csv
    import sys

    writer = csv.writer(sys.stdout)
    writer.writerow(
        ["rank", "org_id", "org_name", "org_type", "user_name", "score", "rules", "reasons",
         "accounts", "first_flagged", "triage_status"]
    )  # fmt: skip
    for r in rows:
        writer.writerow(
            [
                r.rank,
                _cell(r.org_id),
                _cell(r.org_name),
                _cell(r.org_type),
                _cell(r.user_name or ""),
                f"{r.score:.1f}",
                _cell(";".join(r.rules)),
                _cell(" | ".join(x.text for x in r.reasons)),
                _cell(";".join(f"{a.user_name}:{a.share:.0%}" for a in r.accounts)),
                r.first_flagged.isoformat(),
                _cell(r.triage_status),
            ]
        )


def _cell(value: str) -> str:
    """A text cell of the CSV: formulas neutralised, and controls shown as escapes (the
    CSV may be read on a terminal). Rank, score and day are ours: numbers and dates."""
    return csv_cell(visible(value))


TRIAGE_STYLE = {
    "new": "bold cyan",
    "recurring": "dim",
    "misuse": "bold red",
    "returned": "bold yellow",
    "needs_info": "yellow",
    "data_issue": "magenta",
    "legitimate": "green",
}


def _print_suspects(rows: list[Suspect], by: By) -> None:
    table = Table(show_lines=True)
    for col in ("#", "organisation", "score", "rules", "reasons", "accounts", "flagged / triage"):
        table.add_column(col, overflow="fold")
    for r in rows:
        who = f"{markup(r.org_id)} {markup(r.org_name)}\n[dim]{markup(r.org_type)}[/]"
        if by is By.account and r.user_name:
            who += f"\naccount [bold]{markup(r.user_name)}[/]"
        status = f"[{TRIAGE_STYLE.get(r.triage_status, '')}]{markup(r.triage_status)}[/]"
        if r.triage_detail:
            status += f"\n[dim]{markup(r.triage_detail)}[/]"
        table.add_row(
            f"{r.rank}\npinned" if r.pinned else str(r.rank),
            who,
            f"{r.score:.0f}",
            "\n".join(markup(x) for x in r.rules) or "-",
            "\n".join(f"- {markup(x.text)}" for x in r.reasons) or "-",
            "\n".join(f"{markup(a.user_name)} {a.share:.0%}" for a in r.accounts) or "-",
            f"{r.first_flagged}\n{status}",
        )
    console.print(table)


@app.command("explain")
def explain_cmd(
    org: Annotated[str, typer.Argument(help="Organisation id, e.g. ORG00050.")],
    day: DayOpt,
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show why an organisation scored as it did: features vs peers, timeline, evidence,
    and the legitimate explanations in force (rules.toml [[explanations]])."""
    from pipeline.rank.story import explain
    from pipeline.triage.verdicts import TriageFileError

    settings = _settings(config, home=home)
    try:
        ex = explain(settings, org, _parse_day(day))
    except LookupError as e:  # an unknown organisation, or a day not detected yet
        _fail(str(e.args[0]) if e.args else str(e))
        return
    except TriageFileError as e:
        _fail(str(e))
        return
    if fmt is Format.json:  # json.dumps writes every non-ASCII character as \uXXXX
        print(json.dumps(ex.model_dump(mode="json"), indent=2))
        return
    rank = f"rank {ex.rank}" if ex.rank else "unranked"
    console.print(
        f"[bold]{markup(ex.org_id)} {markup(ex.org_name)}[/] ({markup(ex.org_type)}, peers: "
        f"{markup(ex.peer_group)}) on "
        f"{ex.day}: score {ex.score:.0f}, {rank}",
        highlight=False,
    )
    if ex.triage_status:
        detail = f" - {ex.triage_detail}" if ex.triage_detail else ""
        console.print(
            f"triage: [{TRIAGE_STYLE.get(ex.triage_status, '')}]{markup(ex.triage_status)}[/]"
            f"{markup(detail)}",
            highlight=False,
        )
    for reason in ex.reasons:
        console.print(line("  - ", reason.text), highlight=False)
    for explained in ex.explanations:
        console.print(line("  ", ("explained", "green"), " ", explained), highlight=False)
    features = Table(title="features against peers")
    for col in ("feature", "value", "peer median", "peer z", "meaning"):
        features.add_column(col, overflow="fold")
    for f in ex.features:
        features.add_row(
            text(f.feature), _num(f.value), _num(f.peer_median), _num(f.peer_z), text(f.text)
        )
    console.print(features)
    timeline = " ".join(f"{p.day:%d %b}:{p.score:.0f}" for p in ex.timeline)
    console.print(f"[bold]score timeline[/] {timeline}", highlight=False)
    for hit in ex.rule_hits:
        console.print(
            f"[bold]{markup(hit.rule_id)}[/] ({markup(hit.severity)}) "
            f"{markup(hit.message or hit.description)}",
            highlight=False,
        )
        counts = ", ".join(f"{k} {v:,.0f}" for k, v in hit.evidence.counts.items())
        if counts:
            console.print(line(f"    counts: {counts}"), highlight=False)
        for ex_event in hit.evidence.examples:
            console.print(
                line(
                    f"    {ex_event.occurred_at:%Y-%m-%d %H:%M} {ex_event.user_name} "
                    f"{ex_event.operation} learner {ex_event.learner_pid or '-'} "
                    f"(event {ex_event.event_id})"
                ),
                highlight=False,
            )
    _print_verdicts(ex.verdicts)


def _print_verdicts(verdicts: list[TriageDecision]) -> None:
    """The verdict history of ``explain``: every decision, oldest first."""
    if not verdicts:
        console.print("[bold]verdict history[/] none recorded", highlight=False)
        return
    from flows.cli_triage import decisions_table

    console.print(decisions_table(verdicts, title="verdict history (oldest first)", show_org=False))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.3g}"


@app.command("evaluate")
def evaluate_cmd(
    world: Annotated[
        Path | None,
        typer.Option(
            "--world",
            exists=True,
            file_okay=False,
            help="A generated world: runs the whole job on it.",
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            exists=True,
            dir_okay=False,
            help="labels.csv for an already processed home.",
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the figures as Markdown here.")
    ] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Precision/recall@K, ranks and delays on a labelled world, beside two baselines."""
    import shlex
    import sys

    from rich.progress import Progress

    from evaluation.evaluate import evaluate_home, write_markdown
    from evaluation.run import run_landing

    if (world is None) == (labels is None):
        _fail("give either --world DIR or --labels FILE")
    overrides: dict[str, object] = {"home": home}
    if world is not None:
        overrides["landing"] = world / "landing"
        labels = world / "truth" / "labels.csv"
    settings = _settings(config, **overrides)
    assert labels is not None
    if world is not None:
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("ingest, profile and detect", total=None)
            run_landing(settings, progress=lambda d, i, n: bar.update(task, completed=i, total=n))
    results = evaluate_home(settings, labels)
    table = Table(title=text(f"evaluation against {labels}"))
    table.add_column("method")
    for k in results[0].precision:
        table.add_column(f"P@{k}", justify="right")
    for k in results[0].recall:
        table.add_column(f"R@{k}", justify="right")
    table.add_column("detected", justify="right")
    table.add_column("median days", justify="right")
    table.add_column("max decoys top 20", justify="right")
    for m in results:
        table.add_row(
            text(m.method),
            *[f"{v:.2f}" for v in m.precision.values()],
            *[f"{v:.2f}" for v in m.recall.values()],
            f"{m.detected}/{len(m.labels)}",
            _num(m.median_days_to_detect),
            str(m.max_decoys.get(20, "-")),
        )
    console.print(table)
    ours = results[0]
    detail = Table(title="labelled organisations (accesswatch)")
    for col in (
        "org",
        "scenario",
        "onset",
        "best rank",
        "days to top 20",
        "top reason",
        "names it",
    ):
        detail.add_column(col, overflow="fold")
    for lab in ours.labels:
        detail.add_row(
            text(lab.org_id),
            text(lab.scenario),
            str(lab.start_date),
            _num(lab.best_rank),
            _num(lab.days_to_detect),
            text(lab.top_reason or "-"),
            {True: "yes", False: "no", None: "-"}[lab.reason_matches],
        )
    console.print(detail)
    if report is not None:
        command = "accesswatch " + shlex.join(sys.argv[1:])
        try:
            write_markdown(report, results, labels, command)
        except OSError as e:
            _fail(_write_error(e, report))
        console.print(line(f"wrote {report}"))


def _parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"not a date (YYYY-MM-DD): {value!r}")
        raise


def _register_analyst_commands() -> None:
    """triage, report and evidence live in their own modules (flows/cli_*.py)."""
    from flows import cli_evidence, cli_report, cli_triage

    for module in (cli_triage, cli_report, cli_evidence):
        module.register(app)


_register_analyst_commands()


def main() -> None:
    """The console entry point: the app, and a reader that went away (``| head``) ends
    quietly instead of in a BrokenPipeError traceback."""
    import os
    import sys

    try:
        app()
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()

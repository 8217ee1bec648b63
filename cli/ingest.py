"""``accesswatch ingest`` and ``load-reference``: deliveries and the register into the lake."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from cli.options import (
    ConfigOpt,
    HomeOpt,
    LandingOpt,
    console,
    err,
    fail,
    parse_day,
    settings,
)
from pipeline.outputs.safe_text import line, text

# ingest and load-reference wait on a run (WaitOpt's help says job), and have no minimum.
RunWaitOpt = Annotated[
    float, typer.Option("--wait", help="Seconds to wait if another run holds the home.")
]


class Source(StrEnum):
    lrs = "lrs"
    npd = "npd"


def ingest_cmd(
    source: Annotated[Source, typer.Option("--source", help="Which log to ingest.")],
    day: Annotated[
        list[str] | None,
        typer.Option("--day", help="Delivery day YYYY-MM-DD (repeatable)."),
    ] = None,
    all_days: Annotated[
        bool, typer.Option("--all", help="Every delivery day in the landing folder.")
    ] = False,
    wait: RunWaitOpt = 0.0,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Validate, pseudonymise and load delivery files into the Parquet lake.

    Exits 1 when a delivery is refused (its reason is printed); the other files are kept.
    A day without the source's delivery folder is recorded as missing, with a WARNING.
    """
    from pipeline.ingest.deliveries import HomeWriteError, ingest, unexpected_entries

    effective = settings(config, home=home, landing=landing)
    if bool(day) == all_days:
        fail("give either --day (one or more) or --all")
    days = None if all_days else [parse_day(d) for d in day or []]
    try:  # a busy home is the app's one line (cli/app.py)
        report = ingest(effective, source.value, days, lock_wait_seconds=wait)
    except (HomeWriteError, FileNotFoundError, ValueError) as e:
        fail(str(e))
    for warning in unexpected_entries(effective.landing, source.value):
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


def load_reference_cmd(
    wait: RunWaitOpt = 0.0,
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

    effective = settings(config, home=home, landing=landing)
    try:
        reports = load_reference(effective, lock_wait_seconds=wait, allow_bad_rows=allow_bad_rows)
    except BadReferenceRows as e:
        fail(f"{e}\n(nothing was loaded; fix the rows or use --allow-bad-rows)", code=1)
    except (ReferenceError, HomeBusy) as e:  # exit 1 here, not the app's 2 for a busy home
        fail(str(e), code=1)
    for p in reference_problems(effective) if allow_bad_rows else []:
        err.print(line(("WARNING: quarantined", "bold yellow"), " ", p.describe()))
    for r in reports:
        console.print(
            line(
                r.source_file,
                f": {r.rows_read:,} read, {r.rows_written:,} loaded, "
                f"{r.duplicates:,} duplicates, {r.quarantined:,} quarantined",
            )
        )

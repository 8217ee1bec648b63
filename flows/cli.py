"""The ``accesswatch`` command line: thin wiring of ``pipeline/`` (and, later, ``flows/``)."""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from schemas.settings import Settings, load_settings

app = typer.Typer(
    name="accesswatch",
    help="Watch how organisations use the LRS and NPD, and rank suspected misuse with reasons.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console()
err = Console(stderr=True)

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
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


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
    """
    from pipeline.ingest import ingest
    from pipeline.lake import HomeBusy

    settings = _settings(config, home=home, landing=landing)
    if bool(day) == all_days:
        _fail("give either --day (one or more) or --all")
    days = None if all_days else [_parse_day(d) for d in day or []]
    try:
        report = ingest(settings, source.value, days, lock_wait_seconds=wait)
    except (HomeBusy, FileNotFoundError, ValueError) as e:
        _fail(str(e))
        return
    table = Table(title=f"ingest {source.value}: run {report.run_id}")
    for col in ("file", "status", "read", "written", "duplicates", "quarantined", "late"):
        table.add_column(col, justify="left" if col in ("file", "status") else "right")
    for d in report.deliveries:
        colour = {"committed": "green", "skipped": "dim", "refused": "red"}[d.status.value]
        table.add_row(
            d.source_file,
            f"[{colour}]{d.status.value}[/]",
            f"{d.rows_read:,}",
            f"{d.rows_written:,}",
            f"{d.duplicates:,}",
            f"{d.quarantined:,}",
            f"{d.late_events:,}",
        )
    console.print(table)
    for d in report.refused:
        err.print(f"[bold red]refused[/] {d.source_file}: {d.reason}", highlight=False)
    if report.refused:
        raise typer.Exit(1)


@app.command("load-reference")
def load_reference_cmd(
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait if another run holds the home.")
    ] = 0.0,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Validate and load reference/organisations.csv and reference/agreements.csv."""
    from pipeline.lake import HomeBusy
    from pipeline.reference import ReferenceError, load_reference

    settings = _settings(config, home=home, landing=landing)
    try:
        reports = load_reference(settings, lock_wait_seconds=wait)
    except (ReferenceError, HomeBusy) as e:
        _fail(str(e), code=1)
        return
    for r in reports:
        console.print(
            f"{r.source_file}: {r.rows_read:,} read, {r.rows_written:,} loaded, "
            f"{r.duplicates:,} duplicates, {r.quarantined:,} quarantined"
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
) -> None:
    """Write a synthetic LRS/NPD world: a landing folder plus truth/labels.csv and decoys.csv."""
    from rich.progress import Progress

    from pipeline.generate import generate_world
    from schemas.generate import WorldConfig

    try:
        config = WorldConfig(
            orgs=orgs,
            days=days,
            start=_parse_day(start),
            seed=seed,
            malformed_rate=malformed_rate,
            volume_scale=volume_scale,
            scenario_scale=scenario_scale,
        )
    except ValueError as e:
        _fail(str(e))
        return
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("generating days", total=days)
        summary = generate_world(
            out, config, progress=lambda done, _: bar.update(task, completed=done)
        )
    console.print(
        f"wrote {summary.orgs:,} organisations, {summary.lrs_events:,} LRS and "
        f"{summary.npd_events:,} NPD events over {summary.days} days to {out}/landing; "
        f"{summary.malformed_rows:,} malformed rows, {summary.duplicate_rows:,} duplicates; "
        f"answers in {out}/truth"
    )


@app.command("demo")
def demo_cmd(
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the main job on the committed sample: load reference data, ingest every delivery."""
    from pipeline.ingest import ingest
    from pipeline.reference import load_reference

    settings = _settings(config, home=home, landing=landing)
    load_reference(settings)
    table = Table(title=f"ingest of {settings.landing} into {settings.home}")
    for col in (
        "source",
        "days",
        "files",
        "read",
        "written",
        "duplicates",
        "quarantined",
        "late",
        "refused",
    ):
        table.add_column(col, justify="left" if col == "source" else "right")
    for source in ("lrs", "npd"):
        with console.status(f"ingesting {source}"):
            report = ingest(settings, source, None)
        committed = [d for d in report.deliveries if d.status.value != "skipped"]
        table.add_row(
            source,
            f"{len({d.delivery_day for d in report.deliveries}):,}",
            f"{len(report.deliveries):,}",
            f"{sum(d.rows_read for d in committed):,}",
            f"{sum(d.rows_written for d in committed):,}",
            f"{sum(d.duplicates for d in committed):,}",
            f"{sum(d.quarantined for d in committed):,}",
            f"{sum(d.late_events for d in committed):,}",
            f"{len(report.refused):,}",
        )
    console.print(table)


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"not a date (YYYY-MM-DD): {text!r}")
        raise


if __name__ == "__main__":
    app()

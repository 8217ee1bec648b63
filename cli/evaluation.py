"""``accesswatch generate`` and ``evaluate``: synthetic worlds and how well we rank them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.options import (
    ConfigOpt,
    HomeOpt,
    console,
    err,
    fail,
    num,
    parse_day,
    settings,
    write_error,
)
from pipeline.outputs.safe_text import line, text

if TYPE_CHECKING:
    import polars as pl
    from rich.text import Text

    from schemas.evaluation import MethodResult


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
    randomise: Annotated[
        bool,
        typer.Option(
            "--randomise",
            help="Draw every behaviour parameter of every organisation type, scenario and "
            "decoy from wide ranges (from the seed), start scenarios anywhere in the window "
            "and add the extra shapes; the draws go to truth/parameters.json.",
        ),
    ] = False,
    extra_shapes: Annotated[
        bool,
        typer.Option(
            "--extra-shapes",
            help="Add the stealth reseller, the low-volume reseller and national "
            "distance-learning providers (on with --randomise); misuse accounts go to "
            "truth/accounts.csv.",
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
            start=parse_day(start),
            seed=seed,
            malformed_rate=malformed_rate,
            volume_scale=volume_scale,
            scenario_scale=scenario_scale,
            real_feed=RealFeedQuirks(enabled=real_feed_quirks),
            randomise=randomise,
            extra_shapes=extra_shapes,
        )
    except ValueError as e:
        fail(str(e))
    try:
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("generating days", total=days)
            summary = generate_world(
                out, config, progress=lambda done, _: bar.update(task, completed=done)
            )
    except OSError as e:
        fail(write_error(e, out))
    console.print(
        line(
            f"wrote {summary.orgs:,} organisations, {summary.lrs_events:,} LRS and "
            f"{summary.npd_events:,} NPD events over {summary.days} days to {out}/landing; "
            f"{summary.malformed_rows:,} malformed rows, {summary.duplicate_rows:,} "
            f"duplicates; answers in {out}/truth"
        )
    )


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
        Path | None,
        typer.Option(
            "--report",
            help="Write the figures as Markdown here, and as JSON beside it (same name, "
            ".json) for evaluate-summary.",
        ),
    ] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Precision/recall@K, ranks and delays on a labelled world, beside two baselines, and
    the budget view: recall in the top 10 and 20 a day, misuse orgs in the top 10 within a
    day of onset, decoy-days above misuse, legitimate orgs ranked above each misuse org."""
    import shlex
    import sys

    from rich.progress import Progress

    from evaluation.evaluate import evaluate_home, write_json, write_markdown
    from evaluation.run import run_landing

    if (world is None) == (labels is None):
        fail("give either --world DIR or --labels FILE")
    if world is not None:
        labels = world / "truth" / "labels.csv"
    assert labels is not None
    landing = None if world is None else world / "landing"  # None: the settings' landing
    effective = settings(config, home=home, landing=landing)
    if world is not None:
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("ingest, profile and detect", total=None)
            run_landing(effective, progress=lambda d, i, n: bar.update(task, completed=i, total=n))
    results = evaluate_home(effective, labels)
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
            num(m.median_days_to_detect),
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
            num(lab.best_rank),
            num(lab.days_to_detect),
            text(lab.top_reason or "-"),
            {True: "yes", False: "no", None: "-"}[lab.reason_matches],
        )
    console.print(detail)
    console.print(_budget_table(results, title=text(f"budget view against {labels}")))
    if report is not None:
        command = "accesswatch " + shlex.join(sys.argv[1:])
        figures = report.with_suffix(".json")
        try:
            write_markdown(report, results, labels, command)
            write_json(figures, results, labels, command)
        except OSError as e:
            fail(write_error(e, report))
        console.print(line(f"wrote {report} and {figures}"))


def _budget_table(results: list[MethodResult], title: Text) -> Table:
    """The budget figures of one world, one row per method."""
    from evaluation.evaluate import budget_figures

    table = Table(title=title)
    table.add_column("figure")
    for m in results:
        table.add_column(text(m.method), justify="right")
    figures = [budget_figures(m) for m in results]
    for name in figures[0]:
        table.add_row(name, *[num(f[name]) for f in figures])
    table.add_row(
        "missed (top 10 within 1 day)",
        *[text(", ".join(m.budget.missed_soon) or "none") if m.budget else "-" for m in results],
    )
    return table


def evaluate_summary_cmd(
    reports: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="The .json files evaluate --report wrote, one per world.",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the summary as Markdown here.")
    ] = None,
) -> None:
    """The budget figures of several worlds in one table: the mean and the worst world."""
    import shlex
    import sys

    from pydantic import ValidationError

    from evaluation.evaluate import read_json, summarise

    try:
        worlds = [read_json(p) for p in reports]
    except (OSError, ValueError, KeyError, ValidationError) as e:
        fail(f"cannot read the evaluation figures: {e}")
    summary = summarise(worlds)
    console.print(_summary_table(summary, f"budget view over {len(worlds)} worlds: mean and worst"))
    if out is not None:
        lines = [
            f"# Budget view over {len(worlds)} worlds",
            "",
            f"Produced by `accesswatch {shlex.join(sys.argv[1:])}`. Worst: the lowest world "
            "where higher is better, else the highest.",
            "",
            "| method | figure | worlds | mean | worst |",
            "|---|---|---|---|---|",
        ]
        for row in summary.iter_rows(named=True):
            lines.append(
                f"| {row['method']} | {row['figure']} | {row['worlds']} | "
                f"{num(row['mean'])} | {num(row['worst'])} |"
            )
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(lines) + "\n")
        except OSError as e:
            fail(write_error(e, out))
        console.print(line(f"wrote {out}"))


def _budgets(value: str) -> list[int]:
    try:
        budgets = sorted({int(x) for x in value.split(",") if x.strip()})
    except ValueError:
        fail(f"--verdicts: a comma-separated list of whole numbers, got {value!r}")
    if not budgets or any(b < 0 for b in budgets):
        fail(f"--verdicts: at least one budget, none negative, got {value!r}")
    return budgets


def evaluate_analyst_cmd(
    labels: Annotated[
        Path,
        typer.Option("--labels", exists=True, dir_okay=False, help="labels.csv of the world."),
    ],
    report: Annotated[
        Path,
        typer.Option("--report", help="Write the figures as Markdown here, and JSON beside it."),
    ],
    verdicts: Annotated[
        str, typer.Option("--verdicts", help="Verdict budgets to replay, comma-separated.")
    ] = "0,5,20,50",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """A simulated analyst on a home evaluate has processed: each day the top 10 orgs not
    judged yet get their true verdict (from labels.csv) until the budget is used, with
    learning from verdicts and with verdicts that only hide or pin; recall@10 and
    decoy-days above misuse as evaluate's budget view counts them. The home's own verdicts
    are neither read nor changed."""
    import shlex
    import sys

    from rich.progress import Progress

    from evaluation.analyst import simulate, write_reports
    from evaluation.evaluate import budget_figures

    budgets = _budgets(verdicts)
    effective = settings(config, home=home)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("replaying days", total=None)

        def progress(run: str, done: int, total: int) -> None:
            bar.update(task, description=run, completed=done, total=total)

        try:
            runs = simulate(labels, effective, budgets, progress=progress)
        except ValueError as e:
            fail(str(e))
    table = Table(title=text(f"simulated analyst against {labels}"))
    for col in ("ranking", "verdicts (misuse)", "recall@10", "decoy-days above misuse"):
        table.add_column(col, justify="left" if col == "ranking" else "right")
    for r in runs:
        f = budget_figures(r.result)
        table.add_row(
            text(r.result.method),
            f"{r.verdicts} ({r.misuse_verdicts})",
            num(f["recall@10"]),
            num(f["decoy-days above misuse"]),
        )
    console.print(table)
    command = "accesswatch " + shlex.join(sys.argv[1:])
    try:
        figures = write_reports(report, runs, labels, command)
    except OSError as e:
        fail(write_error(e, report))
    console.print(line(f"wrote {report} and {figures}"))


def evaluate_analyst_summary_cmd(
    reports: Annotated[
        list[Path],
        typer.Argument(exists=True, dir_okay=False, help="The .json files evaluate-analyst wrote."),
    ],
) -> None:
    """recall@10 and decoy-days above misuse of each verdict budget over several worlds:
    the mean and the worst world."""
    from pydantic import ValidationError

    from evaluation.analyst import read_reports
    from evaluation.evaluate import summarise

    try:
        worlds = read_reports(reports)
    except (OSError, ValueError, KeyError, ValidationError) as e:
        fail(f"cannot read the simulated analyst's figures: {e}")
    summary = summarise(worlds)
    summary = summary.filter(summary["figure"].is_in(["recall@10", "decoy-days above misuse"]))
    console.print(
        _summary_table(summary, f"simulated analyst over {len(worlds)} worlds: mean and worst")
    )


def _summary_table(summary: pl.DataFrame, title: str) -> Table:
    """The rows of :func:`evaluation.evaluate.summarise` as a table."""
    table = Table(title=title)
    for col in ("method", "figure", "worlds", "mean", "worst"):
        table.add_column(col, justify="left" if col in ("method", "figure") else "right")
    for row in summary.iter_rows(named=True):
        table.add_row(
            text(row["method"]), row["figure"], str(row["worlds"]), num(row["mean"]),
            num(row["worst"]),
        )  # fmt: skip
    return table

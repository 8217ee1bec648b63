"""The ``accesswatch`` Typer app: every command registered in ``--help`` order, and ``main``.

The commands live in one module per group (``cli/ingest.py``, ``cli/runs.py``, ...) and
never import this module, so ``python -m cli.app`` loads each of them once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
import typer.core

from cli import access, evaluation, evidence, ingest, report, runs, scoring, triage
from cli.alerts import alerts_app
from cli.config import config_app
from cli.options import err
from pipeline.outputs.safe_text import line

if TYPE_CHECKING:
    # typer vendors click as typer._click (not the click package): invoke takes its Context.
    from typer._click.core import Context


class _Group(typer.core.TyperGroup):
    """Every command: a home or warehouse busy beyond the wait is one line, exit 2."""

    def invoke(self, ctx: Context) -> Any:
        from pipeline.store.lake import HomeBusy

        try:
            return super().invoke(ctx)
        except HomeBusy as e:
            err.print(line(("error:", "bold red"), " ", str(e)), soft_wrap=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    name="accesswatch",
    help="Watch how organisations use the LRS and NPD, and rank suspected misuse with reasons.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help paragraphs reflow to the terminal width
)
app.add_typer(config_app, name="config")
app.add_typer(alerts_app, name="alerts")

for name, command in (
    ("ingest", ingest.ingest_cmd),
    ("load-reference", ingest.load_reference_cmd),
    ("generate", evaluation.generate_cmd),
    ("backfill", runs.backfill_cmd),
    ("nightly", runs.nightly_cmd),
    ("serve", runs.serve_cmd),
    ("demo", runs.demo_cmd),
    ("profile", scoring.profile_cmd),
    ("detect", scoring.detect_cmd),
    ("suspects", scoring.suspects_cmd),
    ("explain", scoring.explain_cmd),
    ("evaluate", evaluation.evaluate_cmd),
    ("evaluate-summary", evaluation.evaluate_summary_cmd),
    ("evaluate-analyst", evaluation.evaluate_analyst_cmd),
    ("evaluate-analyst-summary", evaluation.evaluate_analyst_summary_cmd),
    ("triage", triage.triage_cmd),
    ("report", report.report_cmd),
    ("evidence", evidence.evidence_cmd),
    ("access-history", access.access_history_cmd),
    ("transparency", access.transparency_cmd),
):
    app.command(name)(command)


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

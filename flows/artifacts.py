"""Prefect artifacts of a run: the top suspects as a table and a markdown summary.

Keys are stable and lowercase, so each artifact's history shows in the Prefect UI.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipeline.outputs.summary import day_summary
from pipeline.rank.listing import NotProfiledError, suspects
from schemas.detection import REPORT_TOP
from schemas.flows import DaySummary, JobPaths, RunResult

TOP_SUSPECTS_KEY = "accesswatch-top-suspects"
NIGHTLY_SUMMARY_KEY = "accesswatch-nightly-summary"
BACKFILL_SUMMARY_KEY = "accesswatch-backfill-summary"


def suspects_table(paths: JobPaths, day: date, top: int) -> list[dict[str, object]]:
    try:
        ranked = suspects(paths.settings(), day, top=top)
    except NotProfiledError:
        return []
    return [
        {
            "rank": s.rank,
            "org_id": s.org_id,
            "org_name": s.org_name,
            "org_type": s.org_type,
            "score": round(s.score, 1),
            "rules": ", ".join(s.rules),
            "top_reason": s.reasons[0].text if s.reasons else "",
            "first_flagged": s.first_flagged.isoformat(),
            "triage_status": str(s.triage_status),
        }
        for s in ranked
    ]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"


def summary_markdown(
    result: RunResult, summary: DaySummary, missing: list[str], report: Path | None = None
) -> str:
    rescored = [d.day.isoformat() for d in result.days if d.day < result.start]
    failed = [f"- {d.day}: {d.reason.strip('; ')}" for d in result.failed]
    lines = [
        f"# accesswatch {result.flow}: {summary.day}",
        "",
        "| | |",
        "|---|---|",
        f"| events in | {summary.events_in:,} |",
        f"| duplicates dropped | {summary.duplicates:,} |",
        f"| quarantined | {summary.quarantined:,} ({_counts(summary.quarantine_reasons)}) |",
        f"| late events | {summary.late_events:,} |",
        f"| missing deliveries | {len(missing)}{' (see below)' if missing else ''} |",
        f"| refused deliveries | {len(summary.refused)} |",
        f"| suspects in the ranked list | {summary.suspects} |",
        f"| new suspects | {', '.join(summary.new_suspects) or 'none'} |",
        f"| rules fired (orgs) | {_counts(summary.rules_fired)} |",
        f"| days re-scored for late events | {', '.join(rescored) or 'none'} |",
        f"| days in the run | {len(result.days)} ({result.start} to {result.end}) |",
        f"| code version | `{result.code_version}` |",
        f"| seconds | {result.seconds:,.1f} |",
    ]
    if report is not None:
        lines += ["", f"Report: [{report.name}]({report.resolve().as_uri()}) (`{report}`)"]
    if not summary.scored:
        lines += ["", f"**No events on {summary.day}: nothing to score** (no ranked list)."]
    if missing:
        # A feed that stops is an operational finding: say so before anything else below.
        lines += [
            "",
            "## Missing deliveries",
            "",
            "No delivery folder arrived (not a quiet day: that is a delivery of 0 rows). "
            "The days were scored from what else came in.",
            "",
            *[f"- {m}" for m in missing],
        ]
    if summary.refused:
        lines += ["", "## Refused deliveries", "", *[f"- {r}" for r in summary.refused]]
    if failed:
        lines += ["", "## Failed days", "", *failed]
    return "\n".join(lines) + "\n"


@task(name="publish-artifacts")
def publish(
    paths: JobPaths,
    day: date,
    result: RunResult,
    missing: list[str],
    top: int = REPORT_TOP,
    report: Path | None = None,
) -> DaySummary:
    """Create the top-suspects table and the run summary for ``day``."""
    summary = day_summary(paths.settings(), day, top)
    outcome = next((d for d in result.days if d.day == day), None)
    if outcome is not None and outcome.summary is not None:
        summary.scored = outcome.summary.scored
    create_table_artifact(
        key=TOP_SUSPECTS_KEY,
        table=suspects_table(paths, day, top),
        description=f"Top {top} suspect organisations on {day}",
    )
    key = NIGHTLY_SUMMARY_KEY if result.flow == "nightly" else BACKFILL_SUMMARY_KEY
    create_markdown_artifact(
        key=key,
        markdown=summary_markdown(result, summary, missing, report),
        description=f"accesswatch {result.flow} summary for {day}",
    )
    return summary

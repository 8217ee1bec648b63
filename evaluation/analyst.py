"""A simulated analyst on an evaluated home: what a number of verdicts does to the ranking.

:func:`simulate` replays the scored days of a home that ``evaluate`` has processed, in
order, once per verdict budget. Each day it reads the list as an analyst would (the
verdicts given so far applied, see :func:`pipeline.rank.listing.suspects`), and gives the
true verdict to each org of the day's top ``onset_k`` (10) not judged yet, until the budget
is used: ``misuse`` when ``labels.csv`` labels the org misuse on that day, ``legitimate``
otherwise. The verdicts live in memory: the home's triage folder is never read or written.

Each budget is run twice: with learning (verdicts teach the ranking,
:mod:`pipeline.rank.learned`) and with verdicts that only hide or pin, so that the learned
layer's own effect shows. The day's ranking is the list as the analyst saw it before that
day's verdicts: pinned orgs above everyone, hidden orgs left out, the rest by their
(adjusted) score, and the orgs off the stored list below by their stored score. Each
ranking is judged by :func:`evaluation.evaluate.judge` and
:func:`evaluation.evaluate.budget_view`, as ``evaluate`` judges ours: the same recall@10 and
decoy-days above misuse. A verdict never teaches its own org (leave-one-org-out), so no
org's figures come from its own days alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import polars as pl

from detectors.rules import load_config
from evaluation.evaluate import (
    accesswatch_scores,
    active_days,
    budget_view,
    from_first_activity,
    judge,
    read_json,
    read_truth,
)
from pipeline.rank.listing import suspects
from pipeline.triage.verdicts import decisions_in_force
from schemas.detection import DetectionConfig, Suspect
from schemas.evaluation import EvaluationConfig, MethodResult
from schemas.settings import Settings
from schemas.triage import TriageDecision, Verdict

DEFAULT_BUDGETS = (0, 5, 20, 50)
PINNED_LIFT = 1_000.0
"""Added to a pinned org's score in the judged ranking: above every ranked org."""
ANALYST = "simulated-analyst"
Progress = Callable[[str, int, int], None]
"""Called with (run, days done, days) after each replayed day."""


@dataclass(frozen=True)
class AnalystRun:
    """One budget, with or without learning: the ranking judged, and the verdicts given."""

    result: MethodResult
    budget: int
    learning: bool
    verdicts: int
    misuse_verdicts: int


def method_name(budget: int, learning: bool) -> str:
    if budget == 0:
        return "0 verdicts"
    return f"{budget} verdicts, " + ("learning" if learning else "hide/pin only")


def true_verdict(labels: pl.DataFrame, org: str, day: date) -> Verdict:
    """``misuse`` when ``labels`` label ``org`` misuse on ``day``, else ``legitimate``."""
    hit = labels.filter(
        (pl.col("org_id") == org) & (pl.col("start_date") <= day) & (pl.col("end_date") >= day)
    )
    return Verdict.misuse if hit.height else Verdict.legitimate


def seen_ranking(
    rows: Sequence[Suspect],
    stored: pl.DataFrame,
    hidden: set[str],
    day: date,
) -> pl.DataFrame:
    """``org_id, day, score`` of the list as seen on ``day``: ``rows`` (with suppressed
    rows, status ``legitimate``) first - pinned lifted by :data:`PINNED_LIFT`, suppressed
    left out - then the orgs of ``stored`` (the day's stored scores) not listed, by their
    stored score, except those in ``hidden`` (a ``legitimate`` verdict in force)."""
    listed = {r.org_id for r in rows}
    seen = [
        (r.org_id, r.score + (PINNED_LIFT if r.pinned else 0.0))
        for r in rows
        if r.triage_status != "legitimate"
    ]
    rest = stored.filter(~pl.col("org_id").is_in(sorted(listed | hidden)))
    frame = pl.DataFrame(seen, schema={"org_id": pl.String, "score": pl.Float64}, orient="row")
    return pl.concat([frame, rest.select("org_id", pl.col("score").cast(pl.Float64))]).with_columns(
        pl.lit(day).alias("day")
    )


def _decision(org: str, verdict: Verdict, row: Suspect, day: date, n: int) -> TriageDecision:
    at = datetime.combine(day, time(12), tzinfo=UTC) + timedelta(microseconds=n)
    return TriageDecision(
        decision_id=f"{at:%Y%m%dT%H%M%S%f}Z-sim{n:06d}",
        org_id=org,
        verdict=verdict,
        note="simulated analyst: the label's verdict",
        analyst=ANALYST,
        decided_at=at,
        day=day,
        score_at_decision=round(min(max(row.score - row.learned_points, 0.0), 100.0), 2),
        rules_at_decision=row.rules,
    )


def replay(
    settings: Settings,
    labels: pl.DataFrame,
    budget: int,
    cfg: DetectionConfig,
    days: Sequence[date],
    stored: pl.DataFrame,
    k: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pl.DataFrame, list[TriageDecision]]:
    """The rankings seen over ``days`` while an analyst gives at most ``budget`` true
    verdicts to the top ``k`` rows, and the verdicts given (in memory)."""
    given: list[TriageDecision] = []
    judged: set[str] = set()
    frames = []
    for i, day in enumerate(days, start=1):
        rows = suspects(
            settings, day, top=10**9, include_suppressed=True, config=cfg, decisions=given
        )
        hidden = {
            o for o, d in decisions_in_force(given, day).items() if d.verdict is Verdict.legitimate
        }
        frames.append(seen_ranking(rows, stored.filter(pl.col("day") == day), hidden, day))
        top = [r for r in rows if not r.pinned and r.triage_status != "legitimate"][:k]
        for r in top:
            if len(given) >= budget:
                break
            if r.org_id in judged:
                continue
            judged.add(r.org_id)
            given.append(
                _decision(r.org_id, true_verdict(labels, r.org_id, day), r, day, len(given))
            )
        if progress is not None:
            progress(i, len(days))
    return pl.concat(frames), given


def simulate(
    labels_file: Path,
    settings: Settings,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    cfg: EvaluationConfig | None = None,
    detection: DetectionConfig | None = None,
    progress: Progress | None = None,
) -> list[AnalystRun]:
    """Each budget replayed with learning and with hide/pin only (budget 0 once: the two
    are the same list), judged as ``evaluate`` judges a ranking."""
    cfg = cfg or EvaluationConfig()
    base = detection or load_config()
    labels, decoys = read_truth(labels_file)
    stored = accesswatch_scores(settings)
    if stored.is_empty():
        raise ValueError(f"{settings.home} has no scores: run evaluate on it first")
    days = sorted(set(stored["day"].to_list()))
    acting = from_first_activity(labels, active_days(settings, days[0], days[-1]))
    runs: list[AnalystRun] = []
    for budget in sorted(set(budgets)):
        for learning in (True, False) if budget else (True,):
            learning_cfg = base.learning.model_copy(update={"enabled": learning})
            detection_cfg = base.model_copy(update={"learning": learning_cfg})
            name = method_name(budget, learning)

            def step(done: int, total: int, name: str = name) -> None:
                if progress is not None:
                    progress(name, done, total)

            seen, given = replay(
                settings, labels, budget, detection_cfg, days, stored, cfg.onset_k, step
            )
            result = judge(name, seen, labels, decoys, cfg).model_copy(
                update={"budget": budget_view(seen, acting, decoys, cfg)}
            )
            runs.append(
                AnalystRun(
                    result=result,
                    budget=budget,
                    learning=learning,
                    verdicts=len(given),
                    misuse_verdicts=sum(1 for d in given if d.verdict is Verdict.misuse),
                )
            )
    return runs


def write_reports(path: Path, runs: Sequence[AnalystRun], labels: Path, command: str) -> Path:
    """The figures as Markdown at ``path`` and as JSON beside it (``.json``, readable by
    :func:`evaluation.evaluate.read_json`, so ``evaluate-summary`` reads it too)."""
    from evaluation.evaluate import budget_figures, budget_markdown

    lines = [
        f"# Simulated analyst on `{labels}`",
        "",
        f"Produced by `{command}`.",
        "",
        "Each day the top 10 orgs not judged yet get the label's verdict until the budget is",
        "used; figures as in `evaluate`'s budget view (from the first onset).",
        "",
        "| ranking | verdicts given (misuse) | recall@10 | decoy-days above misuse |",
        "|---|---|---|---|",
    ]
    for r in runs:
        f = budget_figures(r.result)
        recall, decoys = f["recall@10"], f["decoy-days above misuse"]
        lines.append(
            f"| {r.result.method} | {r.verdicts} ({r.misuse_verdicts}) | "
            f"{'-' if recall is None else f'{recall:.3f}'} | "
            f"{'-' if decoys is None else f'{decoys:g}'} |"
        )
    lines += budget_markdown([r.result for r in runs])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    figures = path.with_suffix(".json")
    payload = {
        "labels": str(labels),
        "command": command,
        "methods": [r.result.model_dump(mode="json") for r in runs],
        "verdicts": [
            {"method": r.result.method, "budget": r.budget, "learning": r.learning,
             "given": r.verdicts, "misuse": r.misuse_verdicts}
            for r in runs
        ],
    }  # fmt: skip
    figures.write_text(json.dumps(payload, indent=1) + "\n")
    return figures


def read_reports(paths: Sequence[Path]) -> list[list[MethodResult]]:
    """The runs of several ``evaluate-analyst`` JSON files, one list per world."""
    return [read_json(p) for p in paths]

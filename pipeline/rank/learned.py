"""The learned layer of the ranked list: what analysts' verdicts teach about other orgs.

A ``misuse`` or ``legitimate`` verdict still pins or hides its own org
(:mod:`pipeline.triage.verdicts`). Here it also teaches: :func:`learn` takes the verdicts
in force on the list day, reads every scored day of each judged org from its verdict's day
to the list day (at most ``learning.example_days``, the latest) as examples, and fits
:class:`detectors.supervised.VerdictNeighbours` on the list day's active orgs. Each active
org of the day then moves by its resemblance to the examples of *other* orgs (never its
own: leave-one-org-out): up towards a confirmed misuse org, down towards one judged
legitimate, by at most ``learning.points``. A hard fact (an entitlement rule hit) is never
lowered. :func:`adjust` applies the points to the listed rows, re-ranks them and words the
reason ("resembles ORG00123, judged legitimate on 2026-08-20 by ana (-12 points learned
from verdicts)").

Versioned: :func:`model_version` is ``unsupervised`` when no verdict teaches (or learning
is off) and ``verdicts-<12 hex>`` otherwise, a SHA-256 of the teaching verdicts (org,
verdict, day, decision id, sorted) and the learning settings, so a new verdict changes the
version recorded with every row. With no teaching verdict nothing is read and the list is
exactly the unsupervised one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import polars as pl

from detectors.supervised import LEGITIMATE, MISUSE, Resemblance, VerdictNeighbours
from pipeline.profile.store import table_columns
from pipeline.rank import sql
from pipeline.triage.verdicts import DayBehaviour, behaviour_change
from schemas.detection import DetectionConfig, LearningConfig, Reason, Suspect
from schemas.features import model_features
from schemas.triage import TriageDecision, Verdict

UNSUPERVISED = "unsupervised"
SCORE_INPUTS = ("unsupervised_models", "unsupervised_rules")
"""The unsupervised parts (0-1) compared beside the features."""
LEARNED_FEATURE = "learned_from_verdicts"
"""The ``feature`` of the reason a learned adjustment adds."""


@dataclass(frozen=True)
class Learned:
    """What the verdicts teach about one list day: points per org (only orgs moved by at
    least ``min_points``), the nearest judged org-day behind each, and the version."""

    version: str = UNSUPERVISED
    points: Mapping[str, float] = field(default_factory=dict)
    resemblances: Mapping[str, Resemblance] = field(default_factory=dict)
    scores: Mapping[str, float] = field(default_factory=dict)
    """The unsupervised score of each moved org on the day (for orgs not listed)."""
    verdicts: Mapping[str, TriageDecision] = field(default_factory=dict)
    """The teaching verdicts, by org."""


def teaching_verdicts(
    in_force: Mapping[str, TriageDecision], day: date
) -> dict[str, TriageDecision]:
    """The ``misuse`` and ``legitimate`` verdicts of ``in_force`` that still apply on
    ``day`` (their ``until`` not passed), by org."""
    return {
        org: d
        for org, d in sorted(in_force.items())
        if d.verdict in (Verdict.misuse, Verdict.legitimate) and (d.until is None or day <= d.until)
    }


def model_version(verdicts: Mapping[str, TriageDecision], cfg: LearningConfig) -> str:
    """``unsupervised`` without teaching verdicts or with learning off, else
    ``verdicts-`` and 12 hex digits of the SHA-256 of the sorted verdict set (org, verdict,
    day, decision id) and the learning settings."""
    if not cfg.enabled or not verdicts:
        return UNSUPERVISED
    items = sorted(
        (d.org_id, d.verdict.value, d.day.isoformat() if d.day else "", d.decision_id)
        for d in verdicts.values()
    )
    payload = json.dumps({"verdicts": items, "learning": cfg.model_dump(mode="json")})
    return "verdicts-" + hashlib.sha256(payload.encode()).hexdigest()[:12]


def learning_features(cfg: DetectionConfig, columns: Sequence[str]) -> list[str]:
    """The feature columns compared (``learning.features``, else the org models'), then
    the unsupervised parts."""
    chosen = list(cfg.learning.features) or list(cfg.models.org_features) or model_features("org")
    return [f for f in chosen if f in columns] + list(SCORE_INPUTS)


def examples_frame(
    org_days: pl.DataFrame,
    verdicts: Mapping[str, TriageDecision],
    day: date,
    cfg: DetectionConfig,
    changed: Mapping[str, date] | None = None,
) -> pl.DataFrame:
    """The examples of the teaching ``verdicts``: each judged org's active days of
    ``org_days`` from its verdict's day to ``day``, at most ``learning.example_days`` (the
    latest), with the columns ``verdict`` (``misuse`` / ``legitimate``). A day with a hard
    fact is no example: the entitlement breach, not the behaviour, made that verdict. An
    org in ``changed`` (a ``legitimate`` org whose behaviour changed materially on that
    day, :func:`pipeline.triage.verdicts.behaviour_change`) teaches only with the days
    before it: what it does since is not what the analyst judged."""
    n = cfg.learning.example_days
    parts = []
    for org, d in sorted(verdicts.items()):
        lo = d.day or (day - timedelta(days=n - 1))
        hi = changed[org] - timedelta(days=1) if changed and org in changed else day
        mine = (
            org_days.filter(
                (pl.col("org_id") == org)
                & pl.col("day").is_between(lo, hi)
                & (pl.col(cfg.models.active_feature).fill_null(0) > 0)
                & ~pl.col("unsupervised_hard_fact").fill_null(False)
            )
            .sort("day")
            .tail(n)
        )
        verdict = MISUSE if d.verdict is Verdict.misuse else LEGITIMATE
        parts.append(mine.with_columns(pl.lit(verdict).alias("verdict")))
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


def fit_day(
    population: pl.DataFrame,
    examples: pl.DataFrame,
    verdicts: Mapping[str, TriageDecision],
    cfg: DetectionConfig,
    version: str,
) -> Learned:
    """The learned points of the active orgs of ``population`` (one list day's org rows
    with the unsupervised parts), given ``examples`` (pure)."""
    lc = cfg.learning
    active = population.filter(pl.col(cfg.models.active_feature).fill_null(0) > 0)
    if active.is_empty() or examples.is_empty():
        return Learned(version=version, verdicts=verdicts)
    feats = learning_features(cfg, active.columns)
    model = VerdictNeighbours(
        features=feats,
        scale_floors=dict.fromkeys(SCORE_INPUTS, lc.score_scale_floor),
        points=lc.points,
        bandwidth=lc.bandwidth,
        min_similarity=lc.min_similarity,
        scale_floor=lc.scale_floor,
        z_clip=lc.z_clip,
    ).fit(active, examples)
    resembles = model.resemblances(active)
    points: dict[str, float] = {}
    near: dict[str, Resemblance] = {}
    scores: dict[str, float] = {}
    rows = active.select("org_id", "unsupervised_score", "unsupervised_hard_fact").iter_rows()
    for (org, score, hard), r in zip(rows, resembles, strict=True):
        if r is None:
            continue
        p = max(r.points, 0.0) if hard else r.points  # a hard fact is never lowered
        if abs(p) < lc.min_points:
            continue
        points[org] = round(p, 2)
        near[org] = r
        scores[org] = float(score)
    return Learned(version=version, points=points, resemblances=near, scores=scores,
                   verdicts=verdicts)  # fmt: skip


def read_org_days(
    con: duckdb.DuckDBPyConnection, lo: date, day: date, orgs: Sequence[str] | None
) -> pl.DataFrame:
    """Org-days of [lo, day] with their unsupervised scores (``sql/rank_org_days.sql``);
    ``orgs`` None: every org."""
    if table_columns(con, "features") is None:
        return pl.DataFrame()
    params = {"lo": lo, "day": day, "all_orgs": orgs is None, "orgs": list(orgs or [])}
    return con.sql(sql("rank_org_days"), params=params).pl()


def learn(
    con: duckdb.DuckDBPyConnection,
    cfg: DetectionConfig,
    day: date,
    in_force: Mapping[str, TriageDecision],
    behaviour: Mapping[str, Sequence[DayBehaviour]] | None = None,
) -> Learned:
    """What the verdicts ``in_force`` on ``day`` teach about that day's orgs (reads the
    judged orgs' org-days and the day's org rows from the warehouse). ``behaviour`` is the
    detected days of each org with a ``legitimate`` verdict (as for
    :func:`pipeline.triage.verdicts.apply_triage`): such an org teaches only with its days
    before its behaviour changed."""
    verdicts = teaching_verdicts(in_force, day)
    version = model_version(verdicts, cfg.learning)
    if version == UNSUPERVISED:
        return Learned()
    lo = min((d.day for d in verdicts.values() if d.day is not None), default=day)
    lo = max(lo, day - timedelta(days=cfg.learning.example_days - 1))
    judged = read_org_days(con, lo, day, sorted(verdicts))
    population = read_org_days(con, day, day, None)
    if judged.is_empty() or population.is_empty():
        return Learned(version=version, verdicts=verdicts)
    changed = {
        org: change[0]
        for org, d in verdicts.items()
        if d.verdict is Verdict.legitimate
        and (change := behaviour_change(d, (behaviour or {}).get(org, ()), day, cfg.triage))
    }
    examples = examples_frame(judged, verdicts, day, cfg, changed)
    return fit_day(population, examples, verdicts, cfg, version)


def _num(x: float) -> str:
    return f"{x:+.0f}" if abs(x) >= 1 else f"{x:+.1f}"


def reason(r: Resemblance, d: TriageDecision, points: float) -> Reason:
    """The reason a learned adjustment adds to a row: whom it resembles, and who judged it."""
    judged = "confirmed misuse" if r.verdict == MISUSE else "judged legitimate"
    on = f" on {d.day}" if d.day else ""
    return Reason(
        feature=LEARNED_FEATURE,
        text=f"resembles {r.org_id}, {judged}{on} by {d.analyst} "
        f"({_num(points)} points learned from verdicts)",
        value=round(r.similarity, 4),
        contribution=points,
    )


def adjust(rows: Sequence[Suspect], learned: Learned) -> list[Suspect]:
    """``rows`` (a day's org rows, best first) with the learned points added to their
    scores (within 0-100), the reason of each moved row, the model version, and re-ranked
    by the adjusted score (equal scores keep their order). Pure."""
    out = []
    for r in rows:
        p = learned.points.get(r.org_id, 0.0)
        update: dict[str, object] = {"model_version": learned.version}
        score = round(min(max(r.score + p, 0.0), 100.0), 2)
        moved = round(score - r.score, 2)
        if moved:
            res = learned.resemblances[r.org_id]
            update |= {
                "score": score,
                "learned_points": moved,
                "reasons": [*r.reasons, reason(res, learned.verdicts[res.org_id], moved)],
            }
        out.append(r.model_copy(update=update))
    if not learned.points:
        return out
    order = sorted(range(len(out)), key=lambda i: -out[i].score)
    return [out[i].model_copy(update={"rank": n}) for n, i in enumerate(order, start=1)]

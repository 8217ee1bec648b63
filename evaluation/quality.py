"""Detector quality over time on a labelled world (the detector-quality notebook's figures).

:func:`evaluation.evaluate.evaluate_home` gives one figure per method over the whole period;
these functions give the same figures day by day, the rank of each labelled organisation
on each day, and which reasons and rules carry each scenario. Precision and recall of a day
are :func:`evaluation.evaluate.judge`'s own, run on that day alone, so both always agree.
The rankings are :func:`evaluation.evaluate.method_scores`, the ones ``evaluate_home`` judges.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from evaluation.evaluate import judge, rank_days
from evaluation.evaluate import method_scores as method_scores  # re-exported for the notebook
from pipeline.store.warehouse import connect
from schemas.evaluation import EvaluationConfig
from schemas.settings import Settings


def daily_quality(
    scores: dict[str, pl.DataFrame],
    labels: pl.DataFrame,
    decoys: pl.DataFrame,
    cfg: EvaluationConfig | None = None,
) -> pl.DataFrame:
    """One row per method, day (from the first onset) and K: ``precision``, ``recall``,
    ``precision_of_possible`` and ``decoys`` in the top K, and ``active``: labelled
    organisations misbehaving that day (precision and recall are NULL when none is)."""
    cfg = cfg or EvaluationConfig()
    onset = labels["start_date"].min()
    assert isinstance(onset, date)
    rows = []
    for method, frame in scores.items():
        for (day,), part in frame.filter(pl.col("day") >= onset).group_by("day"):
            assert isinstance(day, date)
            active = labels.filter(
                (pl.col("start_date") <= day) & (pl.col("end_date") >= day)
            ).height
            result = judge(method, part, labels, decoys, cfg)
            for k in cfg.ks:
                rows.append(
                    {
                        "method": method,
                        "day": day,
                        "k": k,
                        "active": active,
                        "precision": result.precision[k] if active else None,
                        "recall": result.recall[k] if active else None,
                        "precision_of_possible": (
                            result.precision_of_possible[k] if active else None
                        ),
                        "decoys": result.max_decoys[k],
                    }
                )
    schema = {"method": pl.String, "day": pl.Date, "k": pl.Int64, "active": pl.Int64,
              "precision": pl.Float64, "recall": pl.Float64,
              "precision_of_possible": pl.Float64, "decoys": pl.Int64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema).sort("method", "k", "day")


def label_ranks(scores: dict[str, pl.DataFrame], labels: pl.DataFrame) -> pl.DataFrame:
    """``method, org_id, scenario, day, rank, active``: where each labelled organisation
    stood in each method's ranking every day (``active``: inside its labelled period)."""
    parts = []
    lab = labels.select("org_id", "scenario", "start_date", "end_date")
    for method, frame in scores.items():
        parts.append(
            rank_days(frame)
            .join(lab, on="org_id", how="inner")
            .select(
                pl.lit(method).alias("method"),
                "org_id",
                "scenario",
                "day",
                pl.col("rank").cast(pl.Int64),
                (
                    (pl.col("day") >= pl.col("start_date")) & (pl.col("day") <= pl.col("end_date"))
                ).alias("active"),
            )
        )
    return pl.concat(parts).sort("method", "org_id", "day")


def scenario_drivers(settings: Settings, labels: pl.DataFrame) -> pl.DataFrame:
    """What carries each labelled organisation's score during its labelled period:
    ``scenario, org_id, kind`` (``rule`` or ``reason``), ``driver`` (rule id, or the
    feature a stored reason names), ``days`` it appeared on and ``share`` of the org's
    labelled days with results. Reasons are those stored with the ranked list (orgs in
    the stored top list only), so an org rarely listed has few reason days."""
    lab = labels.select("org_id", "scenario", "start_date", "end_date")
    with connect(settings, read_only=True) as con:
        con.register("labels", lab)
        reasons = con.sql(
            "SELECT DISTINCT r.org_id, r.day, r.feature AS driver FROM reasons AS r "
            "JOIN labels AS l ON l.org_id = r.org_id AND r.day BETWEEN l.start_date "
            "AND l.end_date WHERE r.level = 'org' AND NOT regexp_matches(r.text, "
            "'^[A-Z]{2,5}-[0-9]{2,3}: ')"
        ).pl()
        rules = con.sql(
            "SELECT DISTINCT h.org_id, h.day, h.rule_id AS driver FROM rule_hits AS h "
            "JOIN labels AS l ON l.org_id = h.org_id AND h.day BETWEEN l.start_date AND l.end_date"
        ).pl()
        days = con.sql(
            "SELECT s.org_id, count(DISTINCT s.day) AS labelled_days FROM scores AS s "
            "JOIN labels AS l ON l.org_id = s.org_id AND s.day BETWEEN l.start_date "
            "AND l.end_date WHERE s.level = 'org' GROUP BY s.org_id"
        ).pl()
        con.unregister("labels")
    both = pl.concat(
        [
            rules.with_columns(pl.lit("rule").alias("kind")),
            reasons.with_columns(pl.lit("reason").alias("kind")),
        ]
    )
    return (
        both.group_by("org_id", "kind", "driver")
        .agg(pl.col("day").n_unique().alias("days"))
        .join(days, on="org_id", how="left")
        .join(lab.select("org_id", "scenario"), on="org_id")
        .with_columns((pl.col("days") / pl.col("labelled_days")).round(3).alias("share"))
        .select("scenario", "org_id", "kind", "driver", "days", "share")
        .sort(["scenario", "kind", "days", "driver"], descending=[False, True, True, False])
    )

"""Judge a ranking against a labelled world, beside two baselines on the same data.

The baselines are what a department might run without accesswatch: (a) a volume alarm -
an organisation's daily count above a multiple of both its own trailing median and its
peers' median that day, ranked by how far above; (b) a plain IsolationForest over raw
daily counts (calls, distinct learners, users), fitted each day across organisations. Both
are registered detectors (:data:`detectors.registry.BASELINES`, classes in
:mod:`detectors.baselines`), built from :class:`schemas.evaluation.EvaluationConfig`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from detectors.registry import BASELINES
from evaluation import sql
from pipeline.store.lake import lake_dir
from pipeline.store.warehouse import connect
from schemas.evaluation import EvaluationConfig, LabelResult, MethodResult
from schemas.settings import Settings

Progress = Callable[[str, int, int], None]


def read_truth(labels: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``labels.csv`` and the ``decoys.csv`` beside it (empty when absent)."""
    lab = pl.read_csv(labels, infer_schema=False).with_columns(
        pl.col("start_date").str.to_date(), pl.col("end_date").str.to_date()
    )
    decoys_path = labels.parent / "decoys.csv"
    dec = (
        pl.read_csv(decoys_path, infer_schema=False)
        if decoys_path.is_file()
        else pl.DataFrame(schema={"org_id": pl.String, "kind": pl.String})
    )
    return lab, dec


def daily_counts(settings: Settings, first: date, last: date) -> pl.DataFrame:
    """Raw daily volume per organisation and day in [first, last], zero when silent."""
    params: dict[str, object] = {"first": first, "last": last}
    parts: list[pl.DataFrame] = []
    with connect(settings, read_only=True) as con:
        orgs = con.sql("SELECT org_id, org_type FROM organisations").pl()
        for source in ("lrs", "npd"):
            files = sorted(str(p) for p in lake_dir(settings.home, source).glob("*/*.parquet"))
            if files:
                query = sql(f"evaluate_{source}_daily")
                parts.append(con.sql(query, params={**params, "files": files}).pl())
    schema = pl.Schema(
        {"org_id": pl.String, "day": pl.Date, "calls": pl.Int64, "learners": pl.Int64,
         "users": pl.Int64}
    )  # fmt: skip
    volume = (
        (pl.concat([p.cast(schema) for p in parts]) if parts else pl.DataFrame(schema=schema))
        .group_by("org_id", "day")
        .sum()
    )
    days = pl.DataFrame({"day": pl.date_range(first, last, "1d", eager=True)})
    return (
        orgs.join(days, how="cross")
        .join(volume, on=["org_id", "day"], how="left")
        .with_columns(pl.col("calls", "learners", "users").fill_null(0))
        .sort("day", "org_id")
    )


def volume_alarm(counts: pl.DataFrame, cfg: EvaluationConfig) -> pl.DataFrame:
    """Score = calls / max(own trailing median, peer median that day, 1); alarms first
    (:class:`detectors.baselines.VolumeAlarmDetector` over every org and day of ``counts``)."""
    frame = counts.sort("org_id", "day")
    alarm = BASELINES["volume_alarm"].build(cfg).fit(frame)
    return frame.select("org_id", "day").with_columns(pl.Series("score", alarm.score(frame)))


def raw_iforest(counts: pl.DataFrame, cfg: EvaluationConfig) -> pl.DataFrame:
    """A plain IsolationForest on log raw daily counts, fitted per day
    (:class:`detectors.baselines.RawIsolationForestDetector`)."""
    kind = BASELINES["raw_iforest"]
    parts = []
    for (day,), part in counts.group_by("day", maintain_order=True):
        forest = kind.build(cfg).fit(part)
        parts.append(
            part.select("org_id").with_columns(
                pl.lit(day).alias("day"), pl.Series("score", forest.score(part))
            )
        )
    return pl.concat(parts)


def accesswatch_scores(settings: Settings) -> pl.DataFrame:
    """Our organisation scores per day, as stored by ``detect``."""
    with connect(settings, read_only=True) as con:
        return con.sql("SELECT org_id, day, score FROM scores WHERE level = 'org'").pl()


def top_reasons(settings: Settings) -> pl.DataFrame:
    """The first reason and the rules of every org and day (org level)."""
    with connect(settings, read_only=True) as con:
        reasons = con.sql(
            "SELECT org_id, day, feature, text FROM reasons "
            "WHERE level = 'org' AND position = (SELECT min(position) FROM reasons)"
        ).pl()
        rules = con.sql(
            "SELECT org_id, day, string_agg(rule_id, ',' ORDER BY rule_id) AS rules "
            "FROM rule_hits GROUP BY ALL"
        ).pl()
    return reasons.join(rules, on=["org_id", "day"], how="full", coalesce=True)


def rank_days(scores: pl.DataFrame) -> pl.DataFrame:
    """Rank per day: higher score first, ties broken by org_id (deterministic)."""
    return scores.sort(["day", "score", "org_id"], descending=[False, True, False]).with_columns(
        pl.int_range(1, pl.len() + 1).over("day").alias("rank")
    )


def judge(
    method: str,
    scores: pl.DataFrame,
    labels: pl.DataFrame,
    decoys: pl.DataFrame,
    cfg: EvaluationConfig,
    reasons: pl.DataFrame | None = None,
) -> MethodResult:
    """Precision/recall@K per day after the first onset, ranks, delays, decoys in the top K."""
    ranked = rank_days(scores)
    first = labels["start_date"].min()
    last = ranked["day"].max()
    assert isinstance(first, date) and isinstance(last, date)
    days = [first + timedelta(d) for d in range((last - first).days + 1)]
    decoy_ids = set(decoys["org_id"])
    kind_of = dict(zip(decoys["org_id"], decoys["kind"], strict=True))
    decoy_days: dict[str, int] = {}
    precision: dict[int, list[float]] = {k: [] for k in cfg.ks}
    possible: dict[int, list[float]] = {k: [] for k in cfg.ks}
    recall: dict[int, list[float]] = {k: [] for k in cfg.ks}
    decoy_counts: dict[int, list[int]] = {k: [] for k in cfg.ks}
    by_day = {d: part for (d,), part in ranked.group_by("day")}
    for day in days:
        part = by_day.get(day)
        if part is None:
            continue
        active = set(
            labels.filter((pl.col("start_date") <= day) & (pl.col("end_date") >= day))["org_id"]
        )
        shown = set(part.filter(pl.col("rank") <= cfg.detect_k)["org_id"])
        for kind in sorted({kind_of[o] for o in shown & decoy_ids}):
            decoy_days[kind] = decoy_days.get(kind, 0) + 1
        for k in cfg.ks:
            top = set(part.filter(pl.col("rank") <= k)["org_id"])
            hits = len(top & active)
            decoy_counts[k].append(len(top & decoy_ids))
            if active:
                precision[k].append(hits / k)
                possible[k].append(hits / min(k, len(active)))
                recall[k].append(hits / len(active))
    results = []
    labelled = ranked.filter(pl.col("org_id").is_in(labels["org_id"].to_list()))
    for row in labels.iter_rows(named=True):
        mine = ranked.filter(
            (pl.col("org_id") == row["org_id"])
            & (pl.col("day") >= row["start_date"])
            & (pl.col("day") <= row["end_date"])
        ).sort("day")
        best = mine.select(pl.col("rank").min()).item() if mine.height else None
        hit = mine.filter(pl.col("rank") <= cfg.detect_k)
        first_day = hit["day"][0] if hit.height else None
        # the same, with the other labelled orgs left out: its rank among legitimate orgs
        ahead = (
            mine.join(labelled, on="day", suffix="_other")
            .filter(pl.col("rank_other") < pl.col("rank"))
            .group_by("day")
            .len("ahead")
        )
        alone = (
            mine.join(ahead, on="day", how="left")
            .with_columns((pl.col("rank") - pl.col("ahead").fill_null(0)).alias("alone"))
            .filter(pl.col("alone") <= cfg.detect_k)
            .sort("day")
        )
        first_alone = alone["day"][0] if alone.height else None
        top_reason, matches = "", None
        if reasons is not None and first_day is not None:
            r = reasons.filter((pl.col("org_id") == row["org_id"]) & (pl.col("day") == first_day))
            if r.height:
                feature = r["feature"][0] or ""
                rules = r["rules"][0] or ""
                top_reason = f"{r['text'][0] or ''} [{feature}; rules: {rules or '-'}]"
                wanted = cfg.behaviours.get(row["scenario"], ())
                matches = any(w in feature or w in rules.split(",")[0] for w in wanted)
        results.append(
            LabelResult(
                org_id=row["org_id"],
                scenario=row["scenario"],
                start_date=row["start_date"],
                best_rank=int(best) if best is not None else None,
                first_detected=first_day,
                days_to_detect=(first_day - row["start_date"]).days if first_day else None,
                days_to_detect_alone=(
                    (first_alone - row["start_date"]).days if first_alone else None
                ),
                top_reason=top_reason,
                reason_matches=matches,
            )
        )

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else 0.0

    return MethodResult(
        method=method,
        days=len(days),
        precision={k: mean(v) for k, v in precision.items()},
        precision_of_possible={k: mean(v) for k, v in possible.items()},
        recall={k: mean(v) for k, v in recall.items()},
        max_decoys={k: max(v, default=0) for k, v in decoy_counts.items()},
        mean_decoys={k: mean([float(x) for x in v]) for k, v in decoy_counts.items()},
        decoy_days=dict(sorted(decoy_days.items(), key=lambda kv: (-kv[1], kv[0]))),
        labels=results,
    )


def method_scores(
    settings: Settings, cfg: EvaluationConfig | None = None
) -> dict[str, pl.DataFrame]:
    """``org_id, day, score`` of accesswatch and of the two baselines (volume alarm, raw
    isolation forest) over the days accesswatch scored: the rankings ``evaluate_home``
    judges."""
    cfg = cfg or EvaluationConfig()
    ours = accesswatch_scores(settings)
    if ours.is_empty():
        raise ValueError(f"{settings.home} has no scores: run detect for its days first")
    first, last = ours["day"].min(), ours["day"].max()
    assert isinstance(first, date) and isinstance(last, date)
    counts = daily_counts(settings, first - timedelta(cfg.volume_history_days), last)
    return {
        "accesswatch": ours,
        BASELINES["volume_alarm"].label(cfg): volume_alarm(counts, cfg).filter(
            pl.col("day") >= first
        ),
        BASELINES["raw_iforest"].label(cfg): raw_iforest(
            counts.filter(pl.col("day") >= first), cfg
        ),
    }


def evaluate_home(
    settings: Settings, labels_file: Path, cfg: EvaluationConfig | None = None
) -> list[MethodResult]:
    """Judge an already processed home (ingested, profiled and detected) and the baselines."""
    cfg = cfg or EvaluationConfig()
    labels, decoys = read_truth(labels_file)
    scores = method_scores(settings, cfg)
    reasons = {"accesswatch": top_reasons(settings)}
    return [judge(m, s, labels, decoys, cfg, reasons.get(m)) for m, s in scores.items()]


def write_markdown(path: Path, results: list[MethodResult], labels: Path, command: str) -> None:
    """Write the figures of one evaluation as Markdown, with the command that made them."""
    ks = list(results[0].precision)
    lines = [
        f"# Evaluation on `{labels}`",
        "",
        f"Produced by `{command}`.",
        "",
        "Means over the days from the first onset to the last day. P@K counts hits / K;",
        "P@K of possible counts hits / min(K, labelled organisations active that day).",
        "",
        "| method | " + " | ".join(f"P@{k}" for k in ks) + " | "
        + " | ".join(f"P@{k} of possible" for k in ks) + " | "
        + " | ".join(f"R@{k}" for k in ks)
        + " | detected (top 20) | median days to detect | max decoys in top 20 |",
        "|---" * (2 + 3 * len(ks) + 2) + "|",
    ]  # fmt: skip
    for m in results:
        cells = [
            *(f"{m.precision[k]:.2f}" for k in ks),
            *(f"{m.precision_of_possible[k]:.2f}" for k in ks),
            *(f"{m.recall[k]:.2f}" for k in ks),
            f"{m.detected}/{len(m.labels)}",
            "-" if m.median_days_to_detect is None else f"{m.median_days_to_detect:g}",
            str(m.max_decoys.get(20, "-")),
        ]
        lines.append(f"| {m.method} | " + " | ".join(cells) + " |")
    lines += ["", "Decoy kinds in the top 20 (days on which one was there):", ""]
    for m in results:
        shown = ", ".join(f"{kind} {n}" for kind, n in m.decoy_days.items()) or "none"
        lines.append(f"- {m.method}: {shown} (of {m.days} days)")
    for m in results:
        lines += [
            "",
            f"## {m.method}: labelled organisations",
            "",
            "| org | scenario | onset | best rank | days to top 20 | days to top 20, other "
            "misuse left out | top reason | names it |",
            "|---|---|---|---|---|---|---|---|",
        ]

        def days(n: int | None) -> str:
            return "-" if n is None else str(n)

        for x in m.labels:
            names = {True: "yes", False: "no", None: "-"}[x.reason_matches]
            reason = x.top_reason.replace("|", "/") or "-"
            lines.append(
                f"| {x.org_id} | {x.scenario} | {x.start_date} | {x.best_rank or '-'} | "
                f"{days(x.days_to_detect)} | {days(x.days_to_detect_alone)} | {reason} | "
                f"{names} |"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")

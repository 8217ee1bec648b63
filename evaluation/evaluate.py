"""Judge a ranking against a labelled world, beside two baselines on the same data.

The baselines are what a department might run without accesswatch: (a) a volume alarm -
an organisation's daily count above a multiple of both its own trailing median and its
peers' median that day, ranked by how far above; (b) a plain IsolationForest over raw
daily counts (calls, distinct learners, users), fitted each day across organisations. Both
are registered detectors (:data:`detectors.registry.BASELINES`, classes in
:mod:`detectors.baselines`), built from :class:`schemas.evaluation.EvaluationConfig`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from detectors.registry import BASELINES
from evaluation import sql
from pipeline.store.lake import lake_dir
from pipeline.store.warehouse import connect
from schemas.evaluation import (
    BudgetLabel,
    BudgetResult,
    EvaluationConfig,
    LabelResult,
    MethodResult,
)
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


def account_scores(settings: Settings) -> pl.DataFrame:
    """Our account scores per day (``org_id, user_name, day, score``), as stored by ``detect``."""
    with connect(settings, read_only=True) as con:
        return con.sql(
            "SELECT org_id, user_name, day, score FROM scores WHERE level = 'account'"
        ).pl()


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


def active_days(settings: Settings, first: date, last: date) -> pl.DataFrame:
    """``org_id, day`` for every day in [first, last] an org made a call or a query
    (unregistered LRS callers under the ``UKPRN-`` id detection gives them)."""
    schema = pl.Schema({"org_id": pl.String, "day": pl.Date})
    parts = [pl.DataFrame(schema=schema)]
    with connect(settings, read_only=True) as con:
        for source in ("lrs", "npd"):
            files = sorted(str(p) for p in lake_dir(settings.home, source).glob("*/*.parquet"))
            if files:
                params = {"first": first, "last": last, "files": files}
                parts.append(con.sql(sql(f"evaluate_{source}_active"), params=params).pl())
    return pl.concat([p.cast(schema) for p in parts]).unique()


def from_first_activity(labels: pl.DataFrame, active: pl.DataFrame) -> pl.DataFrame:
    """Labels whose ``start_date`` is moved to the org's first day with any call or query on
    or after it, so that a quiet start (an unregistered caller before its first call, an NPD
    over-reach org before its first query) is not counted as a miss. A label whose org never
    acted in its period keeps its ``start_date``: it stays a miss on every day."""
    first = (
        labels.select("org_id", "start_date", "end_date")
        .join(active, on="org_id")
        .filter(pl.col("day").is_between(pl.col("start_date"), pl.col("end_date")))
        .group_by("org_id", "start_date")
        .agg(pl.col("day").min().alias("first_active"))
    )
    return (
        labels.join(first, on=["org_id", "start_date"], how="left")
        .with_columns(pl.coalesce("first_active", "start_date").alias("start_date"))
        .drop("first_active")
    )


def _misuse_orgs(labels: pl.DataFrame) -> pl.DataFrame:
    """One row per labelled misuse org: its first scenario and its whole labelled period."""
    return (
        labels.group_by("org_id", maintain_order=True)
        .agg(pl.col("scenario").first(), pl.col("start_date").min(), pl.col("end_date").max())
        .sort("start_date", "org_id")
    )


def budget_view(
    scores: pl.DataFrame,
    labels: pl.DataFrame,
    decoys: pl.DataFrame,
    cfg: EvaluationConfig,
    accounts: pl.DataFrame | None = None,
) -> BudgetResult:
    """What an analyst reading the top K a day would have seen, from the first onset on.

    Counting rules (``docs/evaluation.md``, "How the budget figures are counted"): a misuse
    org is *active* from its ``start_date`` to its ``end_date``, both included; the top K
    is :func:`rank_days`' order (ties broken by org id); an org *ranks above* an active misuse
    org when its score is higher or equal (a tie is not resolved in the misuse org's
    favour); *legitimate* orgs are decoys and unlabelled orgs; a *decoy-day* is a day on
    which at least one decoy ranks above at least one active misuse org. ``accounts``
    (``org_id, user_name, day, score``) gives the account-level recall of labels that name
    a ``user_name``."""
    ranked = rank_days(scores)
    misuse = _misuse_orgs(labels)
    first = misuse["start_date"].min()
    assert isinstance(first, date)
    ranked = ranked.filter(pl.col("day") >= first)
    # every labelled day of every misuse org, ranked or not: an org missing from a day's
    # ranking is below every org in it (score -inf), so it is never in the top K that day
    active = (
        misuse.join(ranked.select("day").unique(), how="cross")
        .filter((pl.col("day") >= pl.col("start_date")) & (pl.col("day") <= pl.col("end_date")))
        .join(ranked.select("org_id", "day", "score", "rank"), on=["org_id", "day"], how="left")
        .with_columns(
            pl.col("score").fill_null(float("-inf")), pl.col("rank").fill_null(ranked.height + 1)
        )
    )
    decoy_ids = decoys["org_id"].to_list()
    legit = ranked.filter(~pl.col("org_id").is_in(misuse["org_id"].to_list())).select(
        "day", pl.col("score").alias("other"), pl.col("org_id").is_in(decoy_ids).alias("decoy")
    )
    above = (
        active.select("org_id", "day", "score")
        .join(legit, on="day")
        .filter(pl.col("other") >= pl.col("score"))
        .group_by("org_id", "day")
        .agg(pl.len().alias("legitimate"), (~pl.col("decoy")).sum().alias("unlabelled"),
             pl.col("decoy").sum().alias("decoys"))
    )  # fmt: skip
    per_day = (
        active.select("org_id", "day", "rank")
        .join(above, on=["org_id", "day"], how="left")
        .with_columns(pl.col("legitimate", "unlabelled", "decoys").fill_null(0))
    )
    recall = {}
    for k in cfg.budget_ks:
        shares = per_day.group_by("day").agg((pl.col("rank") <= k).mean().alias("share"))
        recall[k] = float(shares["share"].mean()) if shares.height else 0.0  # type: ignore[arg-type]
    out: list[BudgetLabel] = []
    for row in misuse.iter_rows(named=True):
        mine = per_day.filter(pl.col("org_id") == row["org_id"]).sort("day")
        days_to_top: dict[int, int | None] = {}
        for k in sorted({*cfg.budget_ks, cfg.onset_k}):
            hit = mine.filter(pl.col("rank") <= k)
            days_to_top[k] = (hit["day"][0] - row["start_date"]).days if hit.height else None
        unlabelled, unlabelled_day = _worst_day(mine, "unlabelled")
        legitimate, legitimate_day = _worst_day(mine, "legitimate")
        out.append(
            BudgetLabel(
                org_id=row["org_id"],
                scenario=row["scenario"],
                start_date=row["start_date"],
                days_to_top=days_to_top,
                unlabelled_above=unlabelled,
                unlabelled_worst_day=unlabelled_day,
                legitimate_above=legitimate,
                legitimate_worst_day=legitimate_day,
            )
        )
    missed = [
        x.org_id
        for x in out
        if x.days_to_top[cfg.onset_k] is None or x.days_to_top[cfg.onset_k] > cfg.onset_days  # type: ignore[operator]
    ]
    result = BudgetResult(
        recall=recall,
        onset_k=cfg.onset_k,
        onset_days=cfg.onset_days,
        found_soon=len(out) - len(missed),
        missed_soon=missed,
        decoy_days_above_misuse=per_day.filter(pl.col("decoys") > 0)["day"].n_unique(),
        labels=out,
    )
    if accounts is not None:
        result = result.model_copy(update=account_budget(accounts, labels, cfg))
    return result


def _worst_day(days: pl.DataFrame, column: str) -> tuple[int, date | None]:
    """The largest ``column`` over ``days`` and the first day it was reached (0, None: none)."""
    if days.is_empty():
        return 0, None
    top = days.sort([column, "day"], descending=[True, False]).row(0, named=True)
    return int(top[column]), top["day"]


def account_budget(
    accounts: pl.DataFrame, labels: pl.DataFrame, cfg: EvaluationConfig
) -> dict[str, float | int | None]:
    """Recall of the labelled misuse accounts (labels with a ``user_name``) in the account
    ranking's top ``onset_k``: mean over days with an active labelled account, and how many
    of them were ever in it while active. A label naming several accounts (``a;b``, as the
    stealth reseller's do) counts each of them. Ties are broken by org id, then account."""
    if "user_name" not in labels.columns:
        labels = labels.with_columns(pl.lit(None, pl.String).alias("user_name"))
    wanted = (
        labels.with_columns(pl.col("user_name").str.split(";"))
        .explode("user_name")
        .with_columns(pl.col("user_name").str.strip_chars())
        .filter(pl.col("user_name").is_not_null() & (pl.col("user_name") != ""))
    )
    if wanted.is_empty() or accounts.is_empty():
        return {"account_recall": None, "accounts_found": None, "accounts": None}
    ranked = accounts.sort(
        ["day", "score", "org_id", "user_name"], descending=[False, True, False, False]
    ).with_columns(pl.int_range(1, pl.len() + 1).over("day").alias("rank"))
    active = ranked.join(
        wanted.select("org_id", "user_name", "start_date", "end_date"),
        on=["org_id", "user_name"],
    ).filter((pl.col("day") >= pl.col("start_date")) & (pl.col("day") <= pl.col("end_date")))
    hit = pl.col("rank") <= cfg.onset_k
    shares = active.group_by("day").agg(hit.mean().alias("share"))
    found = active.filter(hit).select("org_id", "user_name").unique().height
    n = wanted.select("org_id", "user_name").unique().height
    return {
        "account_recall": float(shares["share"].mean()) if shares.height else 0.0,  # type: ignore[arg-type]
        "accounts_found": found,
        "accounts": n,
    }


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
    accounts = {"accesswatch": account_scores(settings)}
    days = scores["accesswatch"]["day"]
    acting = from_first_activity(labels, active_days(settings, days.min(), days.max()))  # type: ignore[arg-type]
    return [
        judge(m, s, labels, decoys, cfg, reasons.get(m)).model_copy(
            update={"budget": budget_view(s, acting, decoys, cfg, accounts.get(m))}
        )
        for m, s in scores.items()
    ]


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
    lines += budget_markdown(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


BUDGET_FIGURES: dict[str, bool] = {
    "recall@10": True,
    "recall@20": True,
    "in top 10 within 1 day": True,
    "decoy-days above misuse": False,
    "most legitimate above a misuse org": False,
    "most unlabelled above a misuse org": False,
    "slowest days to top 10": False,
    "account recall@10": True,
}
"""The figures :func:`budget_figures` gives, each with whether higher is better (the worst
world is then the lowest) or not (the highest)."""


def budget_figures(result: MethodResult) -> dict[str, float | None]:
    """One world's budget figures for one method, keyed as :data:`BUDGET_FIGURES` (None: not
    measured). Shares are 0-1; "in top 10 within 1 day" is the share of misuse orgs; a
    misuse org never in the top 10 makes "slowest days to top 10" the days it was labelled
    (it was not found in any of them)."""
    b = result.budget
    if b is None:
        return dict.fromkeys(BUDGET_FIGURES)
    slowest: float | None = None
    for x in b.labels:
        found = x.days_to_top.get(10)
        days = float(result.days if found is None else found)  # never: the whole period
        slowest = days if slowest is None else max(slowest, days)
    n = len(b.labels)
    return {
        "recall@10": b.recall.get(10),
        "recall@20": b.recall.get(20),
        "in top 10 within 1 day": b.found_soon / n if n else None,
        "decoy-days above misuse": float(b.decoy_days_above_misuse),
        "most legitimate above a misuse org": float(
            max((x.legitimate_above for x in b.labels), default=0)
        ),
        "most unlabelled above a misuse org": float(
            max((x.unlabelled_above for x in b.labels), default=0)
        ),
        "slowest days to top 10": slowest,
        "account recall@10": b.account_recall,
    }


def write_json(path: Path, results: list[MethodResult], labels: Path, command: str) -> None:
    """The figures of one evaluation as JSON (what ``evaluate-summary`` reads)."""
    payload = {
        "labels": str(labels),
        "command": command,
        "methods": [m.model_dump(mode="json") for m in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")


def read_json(path: Path) -> list[MethodResult]:
    """The results ``write_json`` wrote."""
    payload = json.loads(path.read_text())
    return [MethodResult.model_validate(m) for m in payload["methods"]]


def summarise(worlds: list[list[MethodResult]]) -> pl.DataFrame:
    """``method, figure, worlds, mean, worst``: each budget figure over several worlds'
    results; worst is the lowest where higher is better, the highest otherwise. A figure
    not measured in a world is left out of that world's mean and worst."""
    rows = []
    methods = list(dict.fromkeys(m.method for world in worlds for m in world))
    for method in methods:
        per_world = [budget_figures(m) for world in worlds for m in world if m.method == method]
        for figure, higher_better in BUDGET_FIGURES.items():
            values = [v for f in per_world if (v := f[figure]) is not None]
            rows.append(
                {
                    "method": method,
                    "figure": figure,
                    "worlds": len(values),
                    "mean": float(np.mean(values)) if values else None,
                    "worst": (min(values) if higher_better else max(values)) if values else None,
                }
            )
    schema = {"method": pl.String, "figure": pl.String, "worlds": pl.Int64,
              "mean": pl.Float64, "worst": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def budget_markdown(results: list[MethodResult]) -> list[str]:
    """The budget view of one world as Markdown lines."""
    lines = [
        "",
        "## Budget view",
        "",
        'Over the days from the first onset; see docs/evaluation.md, "How the budget '
        'figures are counted".',
        "",
        "| method | " + " | ".join(BUDGET_FIGURES) + " | missed (top 10 within 1 day) |",
        "|---" * (len(BUDGET_FIGURES) + 2) + "|",
    ]
    for m in results:
        figures = budget_figures(m)
        missed = ", ".join(m.budget.missed_soon) if m.budget else "-"
        lines.append(
            f"| {m.method} | "
            + " | ".join("-" if v is None else f"{v:.2f}".rstrip("0").rstrip(".")
                         for v in figures.values())
            + f" | {missed or 'none'} |"
        )  # fmt: skip
    for m in results:
        if m.budget is None:
            continue
        ks = sorted({*m.budget.recall, m.budget.onset_k})
        lines += [
            "",
            f"### {m.method}: misuse orgs at a budget",
            "",
            "| org | scenario | onset | "
            + " | ".join(f"days to top {k}" for k in ks)
            + " | most unlabelled above (day) | most legitimate above (day) |",
            "|---" * (5 + len(ks)) + "|",
        ]
        for x in m.budget.labels:
            days = " | ".join("-" if x.days_to_top.get(k) is None else str(x.days_to_top[k])
                              for k in ks)  # fmt: skip
            lines.append(
                f"| {x.org_id} | {x.scenario} | {x.start_date} | {days} | "
                f"{x.unlabelled_above} ({x.unlabelled_worst_day or '-'}) | "
                f"{x.legitimate_above} ({x.legitimate_worst_day or '-'}) |"
            )
        if m.budget.accounts is not None:
            lines += [
                "",
                f"Labelled misuse accounts in the account top {m.budget.onset_k}: "
                f"{m.budget.accounts_found} of {m.budget.accounts} ever; mean share a day "
                f"{m.budget.account_recall:.2f}.",
            ]
    return lines

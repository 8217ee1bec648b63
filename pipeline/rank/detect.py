"""Ranking: score every organisation and account of a day, explain, and keep the ranked list.

``detect(settings, day)`` reads the day's ``features`` / ``account_features`` (built by
:func:`pipeline.profile.build.build_profiles`), fits the ensemble the configuration names on
that day's rows (rules and the model detectors of ``[ensemble] weights``, built by
:func:`detectors.registry.build_ensemble`; unsupervised, so every day is fitted on its own
population; where a legitimate explanation of ``rules.toml`` holds for an org, the models
take the features it names as the peer norm for the org and its accounts, see
:mod:`detectors.explanations`), and replaces the day's rows of ``scores``,
``detector_scores`` (one row per model detector), ``rule_hits``, ``reasons`` and
``suspects`` in one transaction. Ranking reads the ensemble's result and never names a
detector; model reasons are given only to rows the models scored. Reasons are worded by
:mod:`pipeline.rank.reasons`, rule evidence comes from
:mod:`pipeline.rank.examples`; the stored list is read by :mod:`pipeline.rank.listing` and
one org's story told by :mod:`pipeline.rank.story`.

Behaviour at the edges (tested):

- an org with no activity has NULL shares; models score only active rows (calls in the
  7-day window) and give the others a model part of 0, so their score comes from rules
  (e.g. NPD breaches) alone, and their reasons from rules alone (no model reasons);
- fewer than ``models.min_fit_rows`` active rows (an empty or partial day): models are not
  fitted, every score comes from rules alone; nothing fails;
- a brand-new org has NULL history changes (no baseline) and is compared with peers only;
- an org type with few active orgs is compared with its type, then with all orgs;
- an organisation not in the register (``UKPRN-<ukprn>`` or an unknown NPD org_id, org_type
  ``unknown``) is scored like any other (compared with all orgs), fires the hard-fact rule
  REG-01, and is listed with the name ``UKPRN <ukprn> (not in the register)``;
- scores, values and peer values are never NaN in the outputs (NULL when unknown).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import duckdb
import numpy as np
import polars as pl

from detectors.ensemble import EnsembleDetector, fold_accounts
from detectors.explanations import holding
from detectors.registry import build_ensemble
from detectors.rules import load_config
from pipeline.profile.store import read_features
from pipeline.rank.examples import attach_evidence
from pipeline.rank.listing import NotProfiledError, first_flagged, org_directory
from pipeline.rank.reasons import borrow_account_reasons, formatter, word_reasons
from pipeline.store.lake import home_lock
from pipeline.store.warehouse import connect, day_has_data, replace_day
from schemas.detection import (
    AccountShare,
    DetectionConfig,
    DetectorScoreRow,
    DetectReport,
    Level,
    RuleHit,
    ScoreRow,
)
from schemas.settings import Settings

OUTPUT_TABLES = ("scores", "detector_scores", "rule_hits", "reasons", "suspects")


class NoEventsError(NotProfiledError):
    """The day has no events in the lake and no delivery committed: nothing to score."""


def _score_level(
    features: pl.DataFrame,
    cfg: DetectionConfig,
    level: Level,
    explained: Mapping[str, Sequence[str]] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, list[RuleHit], EnsembleDetector]:
    """Scores of every row (columns org_id, user_name, rules, models, score, hard_fact),
    each detector's part of them (org_id, user_name, detector, score), the rule hits and
    the fitted ensemble."""
    det = build_ensemble(cfg, level, features.columns, explained, formatter(level)).fit(features)
    result = det.result(features)
    user = pl.col("user_name") if level is Level.account else pl.lit("").alias("user_name")
    keys = features.select("org_id", user)
    scored = keys.with_columns(
        pl.Series("rules", result.rules),
        pl.Series("models", result.models),
        pl.Series("score", np.round(result.score, 2)),
        pl.Series("hard_fact", result.hard),
    )
    parts = pl.concat(
        [
            keys.with_columns(pl.lit(name).alias("detector"), pl.Series("score", part))
            for name, part in result.parts.items()
        ]
        or [_EMPTY_PARTS]
    )
    return scored, parts, result.hits, det


_EMPTY_PARTS = pl.DataFrame(
    schema={"org_id": pl.String, "user_name": pl.String, "detector": pl.String,
            "score": pl.Float64},
)  # fmt: skip


def _keys(ranked: pl.DataFrame) -> set[tuple[str, str]]:
    return set(zip(ranked["org_id"].to_list(), ranked["user_name"].to_list(), strict=True))


def _rows(
    features: pl.DataFrame, keys: set[tuple[str, str]], account: bool = False
) -> dict[tuple[str, str], dict[str, Any]]:
    """Feature rows (as dicts) of the given (org_id, user_name) keys only."""
    if features.is_empty() or not keys:
        return {}
    if account:
        wanted = pl.DataFrame(
            {"org_id": [k[0] for k in keys], "user_name": [k[1] for k in keys]},
            schema={"org_id": pl.String, "user_name": pl.String},
        )
        sub = features.join(wanted, on=["org_id", "user_name"], how="semi")
        return {(r["org_id"], r["user_name"]): r for r in sub.iter_rows(named=True)}
    sub = features.filter(pl.col("org_id").is_in([k[0] for k in keys]))
    return {(r["org_id"], ""): r for r in sub.iter_rows(named=True)}


def _ranked(scored: pl.DataFrame) -> pl.DataFrame:
    """Rows by score (hard facts and rule parts break ties), with their rank."""
    return scored.sort(
        ["score", "hard_fact", "rules", "models", "org_id", "user_name"],
        descending=[True, True, True, True, False, False],
    ).with_row_index("rank", offset=1)


def _account_shares(
    acc_scored: pl.DataFrame, acc_features: pl.DataFrame, cfg: DetectionConfig
) -> dict[str, list[AccountShare]]:
    """Per org, accounts most responsible first; share = score x calls among the org's."""
    if acc_scored.is_empty():
        return {}
    calls = acc_features.select("org_id", "user_name", pl.col("calls_7d").fill_null(0.0))
    frame = acc_scored.join(calls, on=["org_id", "user_name"], how="left").with_columns(
        (pl.col("score") * pl.col("calls_7d").fill_null(0.0)).alias("_w")
    )
    frame = frame.with_columns(
        (pl.col("_w") / pl.col("_w").sum().over("org_id")).fill_nan(0.0).fill_null(0.0).alias("_s")
    ).sort(["org_id", "_w", "user_name"], descending=[False, True, False])
    out: dict[str, list[AccountShare]] = defaultdict(list)
    for org, user, share, score in frame.select("org_id", "user_name", "_s", "score").iter_rows():
        if len(out[org]) < cfg.ranking.max_accounts and share > 0:
            out[org].append(
                AccountShare(
                    user_name=user,
                    share=round(min(max(share, 0.0), 1.0), 4),
                    score=round(min(max(score, 0.0), 100.0), 2),
                )
            )
    return out


def detect(
    settings: Settings,
    day: date,
    config: DetectionConfig | None = None,
    lock_wait_seconds: float = 0.0,
) -> DetectReport:
    """Score every org and account of ``day`` and store scores, hits, reasons, suspects.

    Raises :class:`NotProfiledError` when ``day`` has no features. Re-running a day
    replaces its rows in one transaction.
    """
    cfg = config or load_config()
    started = time.perf_counter()
    with home_lock(settings.home, lock_wait_seconds, purpose="detect"), connect(settings) as con:
        if not day_has_data(con, settings.home, day):
            # No ranked list (and so no first_flagged) for a day nothing was observed on;
            # a list stored for it before (a future day, an outage) is removed.
            replace_day(con, day, dict.fromkeys(OUTPUT_TABLES))
            raise NoEventsError(f"no events on {day}: nothing to score")
        org_f = read_features(con, day, "org")
        if org_f.is_empty():
            raise NotProfiledError(f"no features for {day}: run the profile step first")
        acc_f = read_features(con, day, "account")
        explained = holding(org_f, cfg.explanations)
        org_s, org_parts, org_hits, org_det = _score_level(org_f, cfg, Level.org, explained)
        if acc_f.is_empty():
            acc_s = pl.DataFrame(
                schema={"org_id": pl.String, "user_name": pl.String, "rules": pl.Float64,
                        "models": pl.Float64, "score": pl.Float64, "hard_fact": pl.Boolean},
            )  # fmt: skip
            acc_parts = _EMPTY_PARTS
            acc_hits: list[RuleHit] = []
            acc_det = None
        else:
            acc_s, acc_parts, acc_hits, acc_det = _score_level(acc_f, cfg, Level.account, explained)
        org_s = fold_accounts(org_s, acc_s, cfg.ensemble)
        top_org = _ranked(org_s).head(cfg.ranking.store_top)
        top_acc = _ranked(acc_s).head(cfg.ranking.store_top)
        org_rows = _rows(org_f, {(h.org_id, "") for h in org_hits} | _keys(top_org))
        acc_rows = _rows(
            acc_f, {(h.org_id, h.user_name) for h in acc_hits} | _keys(top_acc), account=True
        )
        hits = attach_evidence(con, settings, cfg, day, org_hits, org_rows)
        hits += attach_evidence(con, settings, cfg, day, acc_hits, acc_rows)
        orgs = {o: (n, t) for o, (n, t, _) in org_directory(con).items()}
        shares = _account_shares(acc_s, acc_f, cfg)
        hits_by: dict[tuple[str, str], list[RuleHit]] = defaultdict(list)
        org_hits_all: dict[str, list[RuleHit]] = defaultdict(list)
        for h in hits:
            hits_by[(h.org_id, h.user_name)].append(h)
            org_hits_all[h.org_id].append(h)

        tables: dict[str, list[dict[str, Any]]] = {t: [] for t in OUTPUT_TABLES}
        frames_scores: list[pl.DataFrame] = []
        frames_parts: list[pl.DataFrame] = []
        for level, scored, parts, feats, det, rows_by in (
            (Level.org, org_s, org_parts, org_f, org_det, org_rows),
            (Level.account, acc_s, acc_parts, acc_f, acc_det, acc_rows),
        ):
            stamp = (pl.lit(day).alias("day"), pl.lit(level.value).alias("level"))
            frames_scores.append(scored.with_columns(*stamp))
            frames_parts.append(parts.with_columns(*stamp))
            if det is None or scored.is_empty():
                continue
            ranked = top_org if level is Level.org else top_acc
            keys = list(zip(ranked["org_id"], ranked["user_name"], strict=True))
            key_cols = ["org_id", "user_name"] if level is Level.account else ["org_id"]
            top = ranked.select(key_cols).join(
                feats, on=key_cols, how="left", maintain_order="left"
            )
            contributions = det.model_contributions(top)
            flagged = first_flagged(con, cfg, day, level.value)
            for i, (rank, (org, user)) in enumerate(
                zip(ranked["rank"].to_list(), keys, strict=True)
            ):
                row = rows_by.get((org, user), {})
                own = (
                    org_hits_all.get(org, [])
                    if level is Level.org
                    else hits_by.get((org, user), [])
                )
                reasons = word_reasons(row, own, contributions[i], level, cfg)
                for pos, reason in enumerate(reasons, start=1):
                    tables["reasons"].append(
                        {"day": day, "level": level.value, "org_id": org, "user_name": user,
                         "position": pos, **reason.model_dump()}
                    )  # fmt: skip
                first = flagged.get((org, user))
                if first is None:
                    first = day
                status = "recurring" if first < day else "new"
                name, org_type = orgs.get(org, (org, "unknown"))
                tables["suspects"].append(
                    {
                        "day": day,
                        "level": level.value,
                        "rank": int(rank),
                        "org_id": org,
                        "user_name": user,
                        "org_name": name,
                        "org_type": org_type,
                        "score": float(ranked["score"][i]),
                        "rules": json.dumps(sorted({h.rule_id for h in own})),
                        "reasons": json.dumps([x.model_dump(mode="json") for x in reasons]),
                        "accounts": json.dumps(
                            [a.model_dump(mode="json") for a in shares.get(org, [])]
                            if level is Level.org
                            else []
                        ),
                        "first_flagged": first,
                        "triage_status": status,
                    }
                )
        for h in hits:
            level = Level.account if h.user_name else Level.org
            tables["rule_hits"].append(
                {
                    "day": day,
                    "level": level.value,
                    "org_id": h.org_id,
                    "user_name": h.user_name,
                    "rule_id": h.rule_id,
                    "severity": h.severity.value,
                    "hard_fact": h.hard_fact,
                    "feature": h.feature,
                    "value": h.value,
                    "threshold": h.threshold,
                    "message": h.message,
                    "evidence": h.evidence.model_dump_json(),
                }
            )
        borrow_account_reasons(tables["suspects"], tables["reasons"])
        _write_outputs(
            con,
            day,
            tables,
            {
                "scores": pl.concat(frames_scores, how="diagonal_relaxed"),
                "detector_scores": pl.concat(frames_parts, how="diagonal_relaxed"),
            },
        )
    return DetectReport(
        day=day,
        organisations=org_f.height,
        accounts=acc_f.height,
        scored_by_models=int((org_s["models"] > 0).sum()),
        rule_hits=len(hits),
        hard_facts=sum(1 for h in hits if h.hard_fact),
        suspects=sum(1 for s in tables["suspects"] if s["level"] == "org"),
        seconds=round(time.perf_counter() - started, 3),
    )


def _write_outputs(
    con: duckdb.DuckDBPyConnection,
    day: date,
    tables: dict[str, list[dict[str, Any]]],
    scores: dict[str, pl.DataFrame],
) -> None:
    """Replace ``day``'s rows of the output tables in one transaction (``scores`` and
    ``detector_scores`` from frames, the others from rows)."""
    frames: dict[str, pl.DataFrame | None] = {
        "scores": scores["scores"].select(list(ScoreRow.model_fields)),
        "detector_scores": scores["detector_scores"].select(list(DetectorScoreRow.model_fields)),
    }
    for table, rows in tables.items():
        if table in frames:
            continue
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = $t "
                "AND database_name <> 'temp' ORDER BY column_index",
                {"t": table},
            ).fetchall()
        ]
        frames[table] = pl.DataFrame(rows, infer_schema_length=None).select(cols) if rows else None
    replace_day(con, day, frames)

"""Ranking: score every organisation and account of a day, explain, and keep the ranked list.

``detect(settings, day)`` reads the day's ``features`` / ``account_features`` (built by
:func:`pipeline.profile.build.build_profiles`), fits the detectors on that day's rows (rules,
IsolationForest, ECOD; unsupervised, so every day is fitted on its own population; where a
legitimate explanation of ``rules.toml`` holds for an org, the models take the features it
names as the peer norm for the org and its accounts, see :mod:`detectors.explanations`), and
replaces the day's rows of ``scores``, ``rule_hits``, ``reasons`` and ``suspects`` in one
transaction. ``suspects`` reads the stored list; ``explain`` assembles one org's story.

Behaviour at the edges (tested):

- an org with no activity has NULL shares; models score only active rows (calls in the
  7-day window) and give the others a model part of 0, so their score comes from rules
  (e.g. NPD breaches) alone;
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
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl

from detectors.base import Contribution
from detectors.ensemble import EnsembleDetector
from detectors.explanations import describe, holding, model_view
from detectors.models import EcodDetector, IsolationForestDetector, _ModelDetector
from detectors.rules import RuleDetector, load_config, plain_format
from pipeline.profile import define_macros
from pipeline.profile.store import read_features
from pipeline.rank import sql
from pipeline.store.lake import home_lock, partition_dir
from pipeline.store.warehouse import connect, day_has_data, replace_day
from pipeline.triage.verdicts import (
    DayBehaviour,
    apply_triage,
    baseline,
    decisions_in_force,
    history,
    last_review,
    standing,
    untriaged_status,
)
from schemas.detection import (
    LIST_TOP,
    SEVERITY_ORDER,
    TIMELINE_DAYS,
    AccountShare,
    DetectionConfig,
    DetectReport,
    Evidence,
    ExampleEvent,
    FeatureComparison,
    Level,
    OrgExplanation,
    Reason,
    RuleHit,
    ScoreRow,
    Suspect,
    TimelinePoint,
    TriageStatus,
)
from schemas.features import (
    ACCOUNT_FEATURE_MAP,
    FEATURES,
    WINDOW_DAYS,
    Feature,
    Kind,
    format_value,
    model_features,
)
from schemas.settings import Settings
from schemas.triage import TriageDecision, Verdict

OUTPUT_TABLES = ("scores", "rule_hits", "reasons", "suspects")


class NotProfiledError(LookupError):
    """The day has no features (run ``build_profiles`` first) or no detection results."""


class NoEventsError(NotProfiledError):
    """The day has no events in the lake and no delivery committed: nothing to score."""


def org_directory(
    con: duckdb.DuckDBPyConnection, org_ids: Sequence[str] | None = None
) -> dict[str, tuple[str, str, str | None]]:
    """org_id -> (name, org_type, ukprn) for the register and for every organisation not in
    it that profiling has seen (``unregistered_orgs``: name ``UKPRN 10009999 (not in the
    register)``, org_type ``unknown``). The register wins when it names the org too."""
    have = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE table_name = 'unregistered_orgs' "
        "AND database_name <> 'temp'"
    ).fetchall()
    query = "SELECT org_id, name, org_type, ukprn FROM organisations"
    if have:
        query += (
            " UNION ALL SELECT org_id, name, 'unknown', ukprn FROM unregistered_orgs "
            "WHERE org_id NOT IN (SELECT org_id FROM organisations)"
        )
    if org_ids is not None:
        query = f"SELECT * FROM ({query}) WHERE org_id IN (SELECT unnest($o))"
        rows = con.execute(query, {"o": list(org_ids)}).fetchall()
    else:
        rows = con.execute(query).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


# --- Scoring ------------------------------------------------------------------------------


def _directions(level: Level) -> dict[str, int]:
    registry = FEATURES if level is Level.org else ACCOUNT_FEATURE_MAP
    return {name: f.direction for name, f in registry.items()}


def build_ensemble(
    cfg: DetectionConfig,
    level: Level,
    columns: list[str],
    explained: Mapping[str, Sequence[str]] | None = None,
) -> EnsembleDetector:
    """The detectors for one level, reading the configured (or default) model features.

    ``explained`` (org_id -> explanation ids, see :func:`detectors.explanations.holding`)
    makes the models see those orgs' explained features at the peer norm."""
    chosen = cfg.models.org_features if level is Level.org else cfg.models.account_features
    feats = list(chosen) if chosen else model_features(level.value)
    feats = [f for f in feats if f in columns]
    directions = _directions(level)
    m = cfg.models
    models: list[_ModelDetector] = [
        IsolationForestDetector(
            features=feats,
            directions=directions,
            n_estimators=m.iforest.n_estimators,
            max_samples=m.iforest.max_samples,
            max_features=m.iforest.max_features,
            contamination=m.iforest.contamination,
            seed=m.seed,
        ),
        EcodDetector(features=feats, directions=directions, contamination=m.ecod.contamination),
    ]
    return EnsembleDetector(
        rules=RuleDetector(
            rules=cfg.rules, level=level, ensemble=cfg.ensemble, formatter=_formatter(level)
        ),
        models=models if feats else [],
        config=cfg.ensemble,
        active=m.active_feature,
        min_fit_rows=m.min_fit_rows,
        view=model_view(explained, cfg.explanations, directions, feats) if explained else None,
    )


def _formatter(level: Level) -> Callable[[str, float], str]:
    registry = FEATURES if level is Level.org else ACCOUNT_FEATURE_MAP

    def fmt(feature: str, value: float) -> str:
        f = registry.get(feature)
        if f is None:
            return plain_format(feature, value)
        if f.kind is Kind.z:
            return f"{value:.1f} robust z"
        return format_value(f, value)

    return fmt


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _peer_text(f: Feature, row: dict[str, Any], level: Level) -> tuple[str, float | None]:
    """The reason text of a base feature with its peers' typical value, and that value."""
    value = _finite(row.get(f.name))
    pm = _finite(row.get(f"{f.name}_pm"))
    text = f.phrase.replace("{v}", format_value(f, value))
    if pm is not None:
        group = row.get("peer_group") if level is Level.org else f"{row.get('org_type')} accounts"
        text += f"; {group or 'peers'}: {format_value(f, pm)}"
    return text, pm


def _model_reason(c: Contribution, row: dict[str, Any], level: Level) -> Reason | None:
    registry = FEATURES if level is Level.org else ACCOUNT_FEATURE_MAP
    derived = registry.get(c.feature)
    if derived is None:
        return None
    base = registry.get(derived.base)
    if base is None or _finite(row.get(base.name)) is None:
        return None
    if derived.kind is Kind.delta:
        delta = _finite(row.get(derived.name))
        if delta is None:
            return None
        value = _finite(row.get(base.name))
        text = base.phrase.replace("{v}", format_value(base, value))
        if base.kind is Kind.tally:
            text += f"; {math.exp(delta):.1f}x its usual daily rate"
        else:
            before = None if value is None else value - delta
            text += f"; its own usual: {format_value(base, before)}"
        return Reason(feature=base.name, text=text, value=value, contribution=c.contribution)
    text, pm = _peer_text(base, row, level)
    return Reason(
        feature=base.name,
        text=text,
        value=_finite(row.get(base.name)),
        peer_value=pm,
        contribution=round(c.contribution, 4),
    )


def _reasons(
    row: dict[str, Any],
    hits: list[RuleHit],
    contributions: list[Contribution],
    level: Level,
    cfg: DetectionConfig,
) -> list[Reason]:
    """Rules first (most severe first), then the model features that drive the score; one
    reason per feature family (``search_share_1d`` and ``_7d`` say the same thing)."""
    registry = FEATURES if level is Level.org else ACCOUNT_FEATURE_MAP
    out: list[Reason] = []
    seen: set[str] = set()

    def family(name: str) -> str:
        f = registry.get(name)
        if f is None:
            return name
        if f.kind in (Kind.z, Kind.peer, Kind.delta):
            f = registry.get(f.base, f)
        return f.base or f.name

    for h in sorted(hits, key=lambda h: (SEVERITY_ORDER[h.severity.value], h.rule_id)):
        f = registry.get(h.feature)
        base = registry.get(f.base) if f is not None and f.kind is Kind.z else f
        who = f"account {h.user_name}: " if h.user_name and level is Level.org else ""
        key = f"{h.user_name}/{family(h.feature)}"
        if key in seen and not h.hard_fact:
            continue
        seen.add(key)
        text = f"{h.rule_id}: {who}{h.message}"
        pm = None
        if base is not None and not who:
            pm = _finite(row.get(f"{base.name}_pm"))
            if pm is not None:
                group = (
                    row.get("peer_group")
                    if level is Level.org
                    else f"{row.get('org_type')} accounts"
                )
                text += f"; {group or 'peers'}: {format_value(base, pm)}"
            seen.add(f"/{family(base.name)}")
        out.append(
            Reason(
                feature=h.feature,
                text=text,
                value=_finite(h.value),
                peer_value=pm,
                contribution=1.0,
            )
        )
    for c in contributions:
        derived = registry.get(c.feature)
        if derived is None or f"/{family(c.feature)}" in seen:
            continue
        if derived.kind is Kind.z and abs(_finite(row.get(c.feature)) or 0.0) < (
            cfg.ranking.min_reason_z
        ):
            continue
        r = _model_reason(c, row, level)
        if r is not None:
            out.append(r)
            seen.add(f"/{family(c.feature)}")
    return out[: cfg.ranking.max_reasons]


def _score_level(
    features: pl.DataFrame,
    cfg: DetectionConfig,
    level: Level,
    explained: Mapping[str, Sequence[str]] | None = None,
) -> tuple[pl.DataFrame, list[RuleHit], EnsembleDetector]:
    """Scores of every row (columns rules, iforest, ecod, models, score, hard_fact)."""
    det = build_ensemble(cfg, level, features.columns, explained).fit(features)
    parts = det.parts(features)
    keys = ["org_id", "user_name"] if level is Level.account else ["org_id"]
    scored = features.select(keys).with_columns(
        pl.Series("rules", parts["rules"]),
        pl.Series("iforest", parts.get("iforest", np.zeros(features.height))),
        pl.Series("ecod", parts.get("ecod", np.zeros(features.height))),
        pl.Series("models", parts["models"]),
        pl.Series("score", np.round(parts["score"], 2)),
        pl.Series("hard_fact", parts["hard"] > 0),
    )
    if level is Level.org:
        scored = scored.with_columns(pl.lit("").alias("user_name"))
    hits = det.rules.hits(features)
    return scored, hits, det


def _fold_accounts(org_s: pl.DataFrame, acc_s: pl.DataFrame, cfg: DetectionConfig) -> pl.DataFrame:
    """An org scores at least ``account_weight`` x its worst account (a stolen account
    inside a normal org surfaces the org too); account hard facts count for the org."""
    if acc_s.is_empty():
        return org_s
    worst = acc_s.group_by("org_id").agg(
        pl.col("score").max().alias("_a_score"),
        pl.col("rules").max().alias("_a_rules"),
        pl.col("hard_fact").any().alias("_a_hard"),
    )
    w = cfg.ensemble.account_weight
    return (
        org_s.join(worst, on="org_id", how="left")
        .with_columns(
            pl.max_horizontal("score", (pl.col("_a_score").fill_null(0.0) * w).round(2)),
            pl.max_horizontal("rules", pl.col("_a_rules").fill_null(0.0)),
            pl.col("hard_fact") | pl.col("_a_hard").fill_null(False),
        )
        .drop("_a_score", "_a_rules", "_a_hard")
    )


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


# --- Evidence -----------------------------------------------------------------------------


def _window_files(settings: Settings, source: str, lo: date, hi: date) -> list[str]:
    out: list[str] = []
    d = lo
    while d <= hi:
        folder = partition_dir(settings.home, source, d)
        if folder.is_dir():
            out += [str(p) for p in sorted(folder.glob("*.parquet"))]
        d += timedelta(days=1)
    return out


def _attach_evidence(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    cfg: DetectionConfig,
    day: date,
    hits: list[RuleHit],
    rows: dict[tuple[str, str], dict[str, Any]],
) -> list[RuleHit]:
    """Rule hits with counts (the features they read) and a few pseudonymised examples."""
    if not hits:
        return []
    by_id = {r.id: r for r in cfg.rules}
    lo = day - timedelta(days=WINDOW_DAYS["7d"] - 1)
    n = cfg.ranking.evidence_examples
    examples: dict[tuple[str, str, str], list[ExampleEvent]] = defaultdict(list)
    if n > 0:
        lrs_wanted = {
            (h.org_id, h.user_name, by_id[h.rule_id].evidence.value)
            for h in hits
            if by_id[h.rule_id].evidence.value != "npd"
        }
        npd_wanted = sorted(
            {
                (h.org_id, by_id[h.rule_id].evidence.value)
                for h in hits
                if by_id[h.rule_id].evidence.value in ("npd", "caller")
            }
        )
        prof = cfg.profile
        if lrs_wanted:
            # unregistered LRS callers (org id UKPRN-<ukprn>) keep their UKPRN too
            ukprns = {o: u for o, (_, _, u) in org_directory(con).items() if u}
            wanted = pl.DataFrame(
                [
                    {"org_id": o, "ukprn": ukprns.get(o), "user_name": u, "kind": k}
                    for o, u, k in sorted(lrs_wanted)
                    if ukprns.get(o)
                ],
                schema={"org_id": pl.String, "ukprn": pl.String, "user_name": pl.String,
                        "kind": pl.String},
            )  # fmt: skip
            params = {
                "examples": n,
                "tz": settings.timezone,
                "office_start": prof.office_start_hour,
                "office_end": prof.office_end_hour,
                "script_pattern": prof.script_agent_pattern,
            }
            # today's events first; the rest of the 7-day window only for hits without any
            for files in (
                _window_files(settings, "lrs", day, day),
                _window_files(settings, "lrs", lo, day - timedelta(days=1)),
            ):
                if not files or not wanted.height:
                    continue
                con.register("wanted", wanted)
                define_macros(con)
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE evidence_lrs AS SELECT ukprn, user_name, "
                    "event_id, occurred_at, operation, learner_pid, uln_valid, user_agent "
                    "FROM read_parquet($files, hive_partitioning = false) "
                    "WHERE ukprn IN (SELECT ukprn FROM wanted)",
                    {"files": files},
                )
                for org, user_key, kind, eid, at, user, op, pid in con.execute(
                    sql("rank_evidence"), params
                ).fetchall():
                    examples[(org, user_key, kind)].append(
                        ExampleEvent(
                            event_id=eid, occurred_at=at, user_name=user, operation=op,
                            learner_pid=pid,
                        )
                    )  # fmt: skip
                con.unregister("wanted")
                wanted = wanted.filter(
                    ~pl.struct("org_id", "user_name", "kind").is_in(
                        [{"org_id": o, "user_name": u, "kind": k} for o, u, k in examples]
                    )
                )
        if npd_wanted:
            files = _window_files(settings, "npd", lo, day)
            if files:
                con.register(
                    "wanted_npd",
                    pl.DataFrame(npd_wanted, schema=["org_id", "kind"], orient="row"),
                )
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE evidence_npd AS SELECT * FROM "
                    "read_parquet($files, hive_partitioning = false)",
                    {"files": files},
                )
                define_macros(con)
                for org, kind, eid, at, user, op, pid in con.execute(
                    sql("rank_npd_evidence"), {"examples": n}
                ).fetchall():
                    if kind == "caller" and len(examples[(org, "", kind)]) >= n:
                        continue  # an LRS caller's examples are its calls already
                    examples[(org, "", kind)].append(
                        ExampleEvent(
                            event_id=eid, occurred_at=at, user_name=user, operation=op,
                            learner_pid=pid,
                        )
                    )  # fmt: skip
                con.unregister("wanted_npd")
    out = []
    for h in hits:
        rule = by_id[h.rule_id]
        row = rows.get((h.org_id, h.user_name), {})
        counts = {}
        for c in [*rule.conditions(), None]:
            name = c.feature if c is not None else rule.volume_feature
            v = _finite(row.get(name))
            if v is not None:
                counts[name] = round(v, 4)
        ex = examples.get((h.org_id, h.user_name, rule.evidence.value), [])
        out.append(h.model_copy(update={"evidence": Evidence(counts=counts, examples=ex)}))
    return out


# --- Detect -------------------------------------------------------------------------------


def _first_flagged(
    con: duckdb.DuckDBPyConnection, cfg: DetectionConfig, day: date, level: str
) -> dict[tuple[str, str], date]:
    lo = day - timedelta(days=cfg.ranking.flag_lookback_days)
    rows = con.execute(
        "SELECT org_id, user_name, min(day) FROM suspects "
        "WHERE level = $level AND day >= $lo AND day < $day AND rank <= $top "
        "GROUP BY org_id, user_name",
        {"level": level, "lo": lo, "day": day, "top": cfg.ranking.flag_top},
    ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


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
        org_s, org_hits, org_det = _score_level(org_f, cfg, Level.org, explained)
        if acc_f.is_empty():
            acc_s = pl.DataFrame(
                schema={"org_id": pl.String, "user_name": pl.String, "rules": pl.Float64,
                        "iforest": pl.Float64, "ecod": pl.Float64, "models": pl.Float64,
                        "score": pl.Float64, "hard_fact": pl.Boolean},
            )  # fmt: skip
            acc_hits: list[RuleHit] = []
            acc_det = None
        else:
            acc_s, acc_hits, acc_det = _score_level(acc_f, cfg, Level.account, explained)
        org_s = _fold_accounts(org_s, acc_s, cfg)
        top_org = _ranked(org_s).head(cfg.ranking.store_top)
        top_acc = _ranked(acc_s).head(cfg.ranking.store_top)
        org_rows = _rows(org_f, {(h.org_id, "") for h in org_hits} | _keys(top_org))
        acc_rows = _rows(
            acc_f, {(h.org_id, h.user_name) for h in acc_hits} | _keys(top_acc), account=True
        )
        hits = _attach_evidence(con, settings, cfg, day, org_hits, org_rows)
        hits += _attach_evidence(con, settings, cfg, day, acc_hits, acc_rows)
        orgs = {o: (n, t) for o, (n, t, _) in org_directory(con).items()}
        shares = _account_shares(acc_s, acc_f, cfg)
        hits_by: dict[tuple[str, str], list[RuleHit]] = defaultdict(list)
        org_hits_all: dict[str, list[RuleHit]] = defaultdict(list)
        for h in hits:
            hits_by[(h.org_id, h.user_name)].append(h)
            org_hits_all[h.org_id].append(h)

        tables: dict[str, list[dict[str, Any]]] = {t: [] for t in OUTPUT_TABLES}
        frames_scores: list[pl.DataFrame] = []
        for level, scored, feats, det, rows_by in (
            (Level.org, org_s, org_f, org_det, org_rows),
            (Level.account, acc_s, acc_f, acc_det, acc_rows),
        ):
            frames_scores.append(
                scored.with_columns(pl.lit(day).alias("day"), pl.lit(level.value).alias("level"))
            )
            if det is None or scored.is_empty():
                continue
            ranked = top_org if level is Level.org else top_acc
            keys = list(zip(ranked["org_id"], ranked["user_name"], strict=True))
            key_cols = ["org_id", "user_name"] if level is Level.account else ["org_id"]
            top = ranked.select(key_cols).join(
                feats, on=key_cols, how="left", maintain_order="left"
            )
            contributions = _model_contributions(det, top)
            flagged = _first_flagged(con, cfg, day, level.value)
            for i, (rank, (org, user)) in enumerate(
                zip(ranked["rank"].to_list(), keys, strict=True)
            ):
                row = rows_by.get((org, user), {})
                own = (
                    org_hits_all.get(org, [])
                    if level is Level.org
                    else hits_by.get((org, user), [])
                )
                reasons = _reasons(row, own, contributions[i], level, cfg)
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
        _write_outputs(con, day, tables, pl.concat(frames_scores, how="diagonal_relaxed"))
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


def _model_contributions(det: EnsembleDetector, top: pl.DataFrame) -> list[list[Contribution]]:
    """Per row of ``top``: model contributions, weighted by the ensemble weights, merged."""
    rows: list[list[Contribution]] = [[] for _ in range(top.height)]
    if not det.models_fitted_ or top.is_empty():
        return rows
    weights = det.config_.weights
    for m in det.models:
        w = weights.get(m.name, 0.0)
        for i, row in enumerate(m.explain(det.model_view(top), top=8)):
            rows[i] += [
                Contribution(c.feature, c.contribution * w, c.value, c.rule_id) for c in row
            ]
    merged = []
    for row in rows:
        acc: dict[str, float] = defaultdict(float)
        vals: dict[str, float | None] = {}
        for c in row:
            acc[c.feature] += c.contribution
            vals[c.feature] = c.value
        merged.append(
            [Contribution(f, v, vals[f]) for f, v in sorted(acc.items(), key=lambda kv: -kv[1])]
        )
    return merged


def _write_outputs(
    con: duckdb.DuckDBPyConnection,
    day: date,
    tables: dict[str, list[dict[str, Any]]],
    scores: pl.DataFrame,
) -> None:
    """Replace ``day``'s rows of the output tables in one transaction."""
    frames: dict[str, pl.DataFrame | None] = {}
    for table, rows in tables.items():
        if table == "scores":
            frames[table] = scores.select(list(ScoreRow.model_fields))
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


# --- Reading the results ------------------------------------------------------------------


def _has_results(con: duckdb.DuckDBPyConnection, day: date) -> bool:
    rows = con.execute("SELECT count(*) FROM scores WHERE day = $d", {"d": day}).fetchall()
    return bool(rows and rows[0][0])


def suspects(
    settings: Settings,
    day: date,
    top: int = LIST_TOP,
    by: str = "org",
    *,
    include_suppressed: bool = False,
    config: DetectionConfig | None = None,
) -> list[Suspect]:
    """The ranked list of ``day`` (orgs, or accounts with ``by="account"``) as analysts see
    it: best first, with the analysts' verdicts applied.

    Reads the stored list (at most ``ranking.store_top`` rows per day, as ``detect`` wrote
    it) and applies the recorded triage decisions at read time, so a verdict takes effect
    at once (rules in :mod:`pipeline.triage.verdicts`): ``misuse`` orgs are pinned above the ranked
    rows (also when they fell out of the stored list; ``top`` counts the ranked rows only),
    ``legitimate`` orgs are left out (kept, as ``legitimate``, with ``include_suppressed``)
    until their verdict ends or their behaviour changes (then ``returned``), ``needs_info``
    and ``data_issue`` are shown as status, and rows without a verdict are ``new`` when
    first flagged after the last review, else ``recurring``. ``first_flagged`` is the first
    day within ``flag_lookback_days`` on which the org (account) ranked within ``flag_top``
    (today when never before). Ranks are positions in the list as returned.

    Raises :class:`NotProfiledError` when ``detect`` has not run for ``day`` and
    :class:`pipeline.triage.verdicts.TriageFileError` for a decision file that is not valid.
    """
    if by not in ("org", "account"):
        raise ValueError(f"by must be 'org' or 'account', got {by!r}")
    cfg = config or load_config()
    decisions = history(settings)
    with connect(settings, read_only=True) as con:
        if not _has_results(con, day):
            raise NotProfiledError(f"no detection results for {day}: run detect first")
        cur = con.execute(
            "SELECT * FROM suspects WHERE day = $d AND level = $l ORDER BY rank",
            {"d": day, "l": by},
        )
        names = [d[0] for d in cur.description or []]
        rows = [_suspect(dict(zip(names, r, strict=True)), by) for r in cur.fetchall()]
        decisions = _resolve_decisions(con, settings, decisions)
        in_force = decisions_in_force(decisions, day)
        behaviour = _behaviour(con, day, in_force)
        extra = (
            _pinned_rows(con, cfg, day, in_force, {r.org_id for r in rows}) if by == "org" else []
        )
    return apply_triage(
        rows,
        decisions,
        behaviour,
        day,
        cfg.triage,
        top,
        include_suppressed=include_suppressed,
        pinned_extra=extra,
    )


def _resolve_decisions(
    con: duckdb.DuckDBPyConnection, settings: Settings, decisions: list[TriageDecision]
) -> list[TriageDecision]:
    """Decisions recorded while the warehouse was busy, completed in memory (the files stay
    as written): a missing day is the latest detected day on or before the decision's local
    date; a missing baseline is the org's score and rules on the decision's day."""
    out = []
    zone = ZoneInfo(settings.timezone)
    for d in decisions:
        if d.day is None:
            local = d.decided_at.astimezone(zone).date()
            found = con.execute(
                "SELECT max(day) FROM scores WHERE level = 'org' AND day <= $d", {"d": local}
            ).fetchone()
            if found and found[0] is not None:
                d = d.model_copy(update={"day": found[0]})
        if d.score_at_decision is None and d.day is not None:
            score, rules = baseline(con, d.org_id, d.day)
            d = d.model_copy(update={"score_at_decision": score, "rules_at_decision": rules})
        out.append(d)
    return out


def _behaviour(
    con: duckdb.DuckDBPyConnection, day: date, in_force: dict[str, TriageDecision]
) -> dict[str, list[DayBehaviour]]:
    """Score and rules of each org with a ``legitimate`` verdict in force, per detected day
    from the verdict's day to ``day``."""
    legit = {o: d for o, d in in_force.items() if d.verdict is Verdict.legitimate}
    if not legit:
        return {}
    lo = min((d.day or date.min) for d in legit.values())
    rows = con.execute(
        "SELECT s.org_id, s.day, s.score, "
        "list(DISTINCT h.rule_id) FILTER (WHERE h.rule_id IS NOT NULL) "
        "FROM scores AS s LEFT JOIN rule_hits AS h ON h.day = s.day AND h.org_id = s.org_id "
        "WHERE s.level = 'org' AND s.org_id IN (SELECT unnest($orgs)) "
        "AND s.day BETWEEN $lo AND $d GROUP BY ALL ORDER BY s.org_id, s.day",
        {"orgs": sorted(legit), "lo": lo, "d": day},
    ).fetchall()
    out: dict[str, list[DayBehaviour]] = defaultdict(list)
    for org, d, score, rules in rows:
        out[org].append(DayBehaviour(day=d, score=float(score), rules=frozenset(rules or [])))
    return dict(out)


def _pinned_rows(
    con: duckdb.DuckDBPyConnection,
    cfg: DetectionConfig,
    day: date,
    in_force: dict[str, TriageDecision],
    present: set[str],
) -> list[Suspect]:
    """Rows for ``misuse`` orgs missing from the stored list of ``day`` (they are listed
    whatever their score): score and rules of the day, no reasons or accounts."""
    wanted = sorted(
        o for o, d in in_force.items() if d.verdict is Verdict.misuse and o not in present
    )
    if not wanted:
        return []
    orgs = {o: (n, t) for o, (n, t, _) in org_directory(con, wanted).items()}
    flagged = _first_flagged(con, cfg, day, "org")
    out = []
    for org in wanted:
        if org not in orgs:
            continue  # not an organisation of this home: nothing to list
        score, rules = baseline(con, org, day)
        out.append(
            Suspect(
                rank=1,
                org_id=org,
                org_name=orgs[org][0],
                org_type=orgs[org][1],
                score=score or 0.0,
                rules=rules,
                first_flagged=flagged.get((org, ""), in_force[org].day or day),
                triage_status="misuse",
            )
        )
    return out


def _suspect(r: dict[str, Any], by: str) -> Suspect:
    return Suspect(
        rank=r["rank"],
        org_id=r["org_id"],
        org_name=r["org_name"],
        org_type=r["org_type"],
        user_name=r["user_name"] if by == "account" else None,
        score=r["score"],
        rules=json.loads(r["rules"]),
        reasons=[Reason.model_validate(x) for x in json.loads(r["reasons"])],
        accounts=[AccountShare.model_validate(x) for x in json.loads(r["accounts"])],
        first_flagged=r["first_flagged"],
        triage_status=r["triage_status"],
    )


def explain(
    settings: Settings, org_id: str, day: date, config: DetectionConfig | None = None
) -> OrgExplanation:
    """Feature values against peers (key features, largest peer z first), the daily score
    timeline over the last 28 days, rule hits with evidence, reasons and accounts, and the
    analysts' verdicts: every decision on the org (oldest first) and the triage status it
    has in ``day``'s list (as :func:`suspects` gives it; ``legitimate`` when suppressed,
    None when unranked without a verdict in force).

    An organisation not in the register that profiling has seen (``UKPRN-<ukprn>`` or its
    NPD org_id) is explained like any other, named ``UKPRN <ukprn> (not in the register)``
    with org_type ``unknown``.

    Raises :class:`NotProfiledError` when ``detect`` has not run for ``day`` and
    ``KeyError`` for an org id no register row or event names. An org outside the stored
    top list has ``rank=None``; ``rank`` is its place in the list ``detect`` stored, before
    verdicts are applied.
    """
    cfg = config or load_config()
    decisions = history(settings)
    with connect(settings, read_only=True) as con:
        if not _has_results(con, day):
            raise NotProfiledError(f"no detection results for {day}: run detect first")
        found = org_directory(con, [org_id])
        if org_id not in found:
            raise KeyError(f"unknown organisation {org_id!r}")
        org = found[org_id]
        feats = read_features(con, day, "org").filter(pl.col("org_id") == org_id)
        row = feats.row(0, named=True) if feats.height else {}
        score_rows = con.execute(
            "SELECT s.day, s.score, x.rank FROM scores AS s "
            "LEFT JOIN suspects AS x ON x.day = s.day AND x.level = 'org' "
            "AND x.org_id = s.org_id "
            "WHERE s.level = 'org' AND s.org_id = $o AND s.day BETWEEN $lo AND $d ORDER BY s.day",
            {"o": org_id, "lo": day - timedelta(days=TIMELINE_DAYS - 1), "d": day},
        ).fetchall()
        hit_rows = con.execute(
            "SELECT rule_id, severity, user_name, feature, value, threshold, hard_fact, message, "
            "evidence FROM rule_hits WHERE day = $d AND org_id = $o ORDER BY rule_id, user_name",
            {"d": day, "o": org_id},
        ).fetchall()
        cur = con.execute(
            "SELECT * FROM suspects WHERE day = $d AND level = 'org' AND org_id = $o",
            {"d": day, "o": org_id},
        )
        names = [d[0] for d in cur.description or []]
        found_suspect = cur.fetchall()
        suspect_row = found_suspect[0] if found_suspect else None
        rule_desc = {r.id: r.description for r in cfg.rules}
        resolved = _resolve_decisions(con, settings, decisions)
        in_force = {o: d for o, d in decisions_in_force(resolved, day).items() if o == org_id}
        behaviour = _behaviour(con, day, in_force)
    comparisons = []
    for f in FEATURES.values():
        if not f.key:
            continue
        value = _finite(row.get(f.name))
        text, pm = _peer_text(f, row, Level.org)
        comparisons.append(
            FeatureComparison(
                feature=f.name,
                definition=f.definition,
                value=value,
                peer_median=pm,
                peer_z=_finite(row.get(f"{f.name}_pz")),
                text=text,
            )
        )
    comparisons.sort(key=lambda c: -abs(c.peer_z or 0.0))
    held = holding(feats, cfg.explanations).get(org_id, [])
    current = dict(zip(names, suspect_row, strict=True)) if suspect_row else None
    score_today = next((s for d, s, _ in score_rows if d == day), 0.0)
    stand = standing(in_force.get(org_id), behaviour.get(org_id, []), day, cfg.triage)
    status: TriageStatus | None = stand.status if stand else None
    if stand is None and current is not None:
        status = untriaged_status(current["first_flagged"], last_review(resolved, day), day)
    return OrgExplanation(
        org_id=org_id,
        org_name=org[0],
        org_type=org[1],
        day=day,
        peer_group=str(row.get("peer_group") or ""),
        score=float(score_today),
        rank=current["rank"] if current else None,
        reasons=_suspect(current, "org").reasons if current else [],
        features=comparisons,
        timeline=[TimelinePoint(day=d, score=float(s), rank=k) for d, s, k in score_rows],
        rule_hits=[
            RuleHit(
                rule_id=rid,
                severity=sev,
                org_id=org_id,
                user_name=user,
                description=rule_desc.get(rid, rid),
                feature=feat,
                value=val,
                threshold=thr,
                hard_fact=hard,
                message=msg,
                evidence=Evidence.model_validate_json(ev),
            )
            for rid, sev, user, feat, val, thr, hard, msg, ev in hit_rows
        ],
        explanations=[
            describe(e, row, _formatter(Level.org)) for e in cfg.explanations if e.id in held
        ],
        accounts=_suspect(current, "org").accounts if current else [],
        triage_status=status,
        triage_detail=stand.detail if stand else None,
        verdicts=[d for d in decisions if d.org_id == org_id],
    )

"""Usage profiles: a day's feature rows, per organisation (``features``) and per account
(``account_features``), and :func:`build_profiles`, which makes and stores them.

How a day is profiled (``build_profiles(settings, day)``):

1. **Daily summaries** of each lake day in the lookback ``[day - 34, day]`` are made
   current (:mod:`pipeline.profile.summaries`: rebuilt only when their inputs or code
   changed).
2. **Windows.** The 1, 7 and 28-day windows (and the 28-day baseline before the 7-day
   window) are sums over those summaries (``profile_org_windows.sql``).
3. **Peers and history** (:mod:`pipeline.profile.peers`): each key feature's robust z-score
   against its peer group, the peers' median, and its change against its own baseline.
4. The day's rows of ``features`` and ``account_features`` are replaced in one transaction
   (:mod:`pipeline.profile.store`).

Organisations not in the register: LRS events whose UKPRN matches no registered org are
kept under the synthetic org id ``UKPRN-<ukprn>`` and NPD queries keep their own
``org_id``; each such org seen in the 28-day window gets a feature row with org_type
``unknown``, ``unregistered`` = 1 and ``unregistered_events_*`` (its calls and queries), which
rule REG-01 reads (``profile_org_register.sql``). They never form or shape a peer group.
An org whose region is unknown has NULL region features (``out_region_share_*``,
``plr_far*``): no evidence, not "every learner lives elsewhere".

Empty and partial days: an organisation with no events has counts of 0 and shares of NULL
(no evidence, not zero); peer z-scores of NULL stay NULL and models read them as 0. A new
organisation with no history has NULL history changes. ``docs/features.md`` lists every
feature and is generated from :data:`~schemas.features.ORG_FEATURES` /
:data:`~schemas.features.ACCOUNT_FEATURES`.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import duckdb
import polars as pl

from detectors.rules import load_config
from pipeline.profile import run_sql
from pipeline.profile.peers import (
    ACCOUNT_PEER_LEVELS,
    ORG_PEER_LEVELS,
    account_in_peer_pool,
    account_peer_group_name,
    history_changes,
    org_in_peer_pool,
    peer_group_name,
    peer_relative,
)
from pipeline.profile.store import replace_features
from pipeline.profile.summaries import (
    ensure_summaries,
    ensure_summary_tables_exist,
    first_lake_day,
    record_unregistered,
)
from pipeline.store.lake import home_lock
from pipeline.store.warehouse import connect
from schemas.detection import DetectionConfig, ProfileConfig, ProfileReport
from schemas.features import (
    ACCOUNT_FEATURES,
    BASELINE_DAYS,
    LOOKBACK_DAYS,
    ORG_FEATURES,
    WINDOW_DAYS,
    Kind,
)
from schemas.settings import Settings

_OUT_COLUMNS_ORG = ("org_id", "day", "org_type", "size_band", "peer_group", "peer_level")
_OUT_COLUMNS_ACCOUNT = ("org_id", "user_name", "day", "org_type", "peer_group", "peer_level")


def _wide(long: pl.DataFrame, keys: list[str], windows: tuple[str, ...]) -> pl.DataFrame:
    """Long (win, keys..., columns) -> wide ``<column>_<win>``."""
    values = [c for c in long.columns if c not in ("win", *keys)]
    out: pl.DataFrame | None = None
    for w in windows:
        part = long.filter(pl.col("win") == w).select(
            *keys, *[pl.col(c).alias(f"{c}_{w}") for c in values]
        )
        out = part if out is None else out.join(part, on=keys, how="left", coalesce=True)
    assert out is not None
    return out


def _windows(day: date) -> tuple[date, date, date, date]:
    """The 7-day and 28-day window starts and the baseline's first and last day."""
    d7 = day - timedelta(days=WINDOW_DAYS["7d"] - 1)
    d28 = day - timedelta(days=WINDOW_DAYS["28d"] - 1)
    b_hi = d7 - timedelta(days=1)
    return d7, d28, d7 - timedelta(days=BASELINE_DAYS), b_hi


def _baseline_days(settings: Settings, day: date) -> int:
    """Days of the 28-day baseline covered by the lake (0 before any history)."""
    first = first_lake_day(settings)
    _, _, b_lo, b_hi = _windows(day)
    covered_from = max(b_lo, first) if first else None
    return (b_hi - covered_from).days + 1 if covered_from and covered_from <= b_hi else 0


def _followup_params(cfg: ProfileConfig, day: date) -> dict[str, object]:
    """Parameters of the lagged follow-through: the lookback, the last closed search day
    (``c_hi``) and the first day of the 7-day closed cohort (``c7_lo``)."""
    c_hi = day - timedelta(days=cfg.followup_lag_days)
    return {
        "lag_lo": day - timedelta(days=LOOKBACK_DAYS),
        "lag_days": cfg.followup_lag_days,
        "c_hi": c_hi,
        "c7_lo": c_hi - timedelta(days=WINDOW_DAYS["7d"] - 1),
        "min_followup": cfg.min_followup_searches,
    }


def compute_org_features(
    con: duckdb.DuckDBPyConnection, settings: Settings, cfg: ProfileConfig, day: date
) -> pl.DataFrame:
    """The ``features`` rows of ``day`` (one per organisation), from current summaries."""
    first = first_lake_day(settings)
    d7, d28, b_lo, b_hi = _windows(day)
    baseline_days = _baseline_days(settings, day)
    history_start = max(day - timedelta(days=LOOKBACK_DAYS), first) if first else day
    pool = {
        "day": day,
        "d7": d7,
        "d28": d28,
        "b_lo": b_lo,
        "b_hi": b_hi,
        "sample_size": cfg.learner_sample_size,
        "history_start": history_start,
        "band_edges": list(cfg.size_band_edges),
        "recent_name_days": cfg.recent_name_change_days,
        **_followup_params(cfg, day),
    }
    run_sql(con, "profile_org_register", pool)
    run_sql(con, "profile_learner_followup", pool)
    run_sql(con, "profile_followup_cohorts", pool)
    run_sql(con, "profile_org_windows", pool)
    run_sql(con, "profile_org_facts", pool)
    long = con.sql("SELECT * FROM org_windows").pl()
    wide = _wide(long, ["org_id"], ("1d", "7d", "28d", "b28"))
    facts = con.sql("SELECT * FROM org_facts").pl()
    frame = facts.join(wide, on="org_id", how="left")
    base = [f for f in ORG_FEATURES if f.kind not in (Kind.z, Kind.peer, Kind.delta)]
    frame = history_changes(frame, [f for f in base if f.history], baseline_days)
    # Unregistered orgs are not in the peer pool, so their own groups are empty and they
    # are compared with all organisations (see pipeline.profile.peers).
    frame = peer_relative(
        frame, [f for f in base if f.key], cfg, ORG_PEER_LEVELS, org_in_peer_pool()
    )
    frame = frame.with_columns(
        pl.lit(day).alias("day"), peer_group_name(cfg.size_band_edges).alias("peer_group")
    )
    cols = [*_OUT_COLUMNS_ORG, *[f.name for f in ORG_FEATURES]]
    return (
        frame.select(
            *[pl.col(c) for c in _OUT_COLUMNS_ORG],
            *[pl.col(f.name).cast(pl.Float64) for f in ORG_FEATURES],
        )
        .select(cols)
        .sort("org_id")
    )


def compute_account_features(
    con: duckdb.DuckDBPyConnection, cfg: ProfileConfig, day: date, baseline_days: int = 0
) -> pl.DataFrame:
    """The ``account_features`` rows of ``day``: accounts with a call in the 7-day window.

    Reads temp ``followup_cohorts`` and ``org_register`` (made by
    :func:`compute_org_features` on this connection). ``baseline_days``: days of the
    account's 28-day baseline covered by the lake (0: no history changes)."""
    d7, _, b_lo, b_hi = _windows(day)
    pool = {"day": day, "d7": d7, "b_lo": b_lo, "b_hi": b_hi, **_followup_params(cfg, day)}
    run_sql(con, "profile_account_windows", pool)
    long = con.sql("SELECT * FROM account_windows").pl()
    wide = _wide(long, ["org_id", "user_name"], ("1d", "7d", "b28"))
    # temp `org_register` (built by compute_org_features on this connection) also holds
    # unregistered orgs (org_type 'unknown'); their accounts are compared with all accounts
    orgs = con.sql("SELECT org_id, org_type, unregistered FROM org_register").pl()
    frame = wide.join(orgs, on="org_id", how="left")
    base = [f for f in ACCOUNT_FEATURES if f.kind not in (Kind.z, Kind.peer, Kind.delta)]
    frame = history_changes(frame, [f for f in base if f.history], baseline_days)
    frame = peer_relative(
        frame, [f for f in base if f.key], cfg, ACCOUNT_PEER_LEVELS, account_in_peer_pool()
    )
    frame = frame.with_columns(
        pl.lit(day).alias("day"), account_peer_group_name().alias("peer_group")
    )
    return frame.select(
        *[pl.col(c) for c in _OUT_COLUMNS_ACCOUNT],
        *[pl.col(f.name).cast(pl.Float64) for f in ACCOUNT_FEATURES],
    ).sort("org_id", "user_name")


def build_profiles(
    settings: Settings,
    day: date,
    config: DetectionConfig | None = None,
    lock_wait_seconds: float = 0.0,
) -> ProfileReport:
    """Compute ``features`` and ``account_features`` for every organisation on ``day``.

    Every organisation in ``organisations`` gets a row, active or not, and so does every
    organisation not in the register that made a call or query in the 28-day window
    (``unregistered`` = 1, org_type ``unknown``, id ``UKPRN-<ukprn>`` for an LRS caller).
    Re-running a day replaces its rows in one transaction. Daily summaries of the 34 days before are
    reused when current and rebuilt from the lake otherwise (see the module docstring).
    """

    cfg = (config or load_config()).profile
    started = time.perf_counter()
    with home_lock(settings.home, lock_wait_seconds, purpose="profile"), connect(settings) as con:
        built = ensure_summaries(con, settings, cfg, day)
        ensure_summary_tables_exist(con, settings)
        org = compute_org_features(con, settings, cfg, day)
        acc = compute_account_features(con, cfg, day, _baseline_days(settings, day))
        replace_features(con, {"features": org, "account_features": acc}, day)
        record_unregistered(con)
        rows = con.execute(
            "SELECT coalesce(sum(calls), 0) FROM org_day WHERE day = $d", {"d": day}
        ).fetchall()
        events = int(rows[0][0]) if rows else 0
    active = org.filter((pl.col("calls_1d") > 0) | (pl.col("npd_queries_1d") > 0)).height
    return ProfileReport(
        day=day,
        organisations=org.height,
        active_organisations=active,
        unregistered_organisations=org.filter(pl.col("unregistered") > 0).height,
        accounts=acc.height,
        events_today=events,
        summarised_days=built,
        seconds=round(time.perf_counter() - started, 3),
    )

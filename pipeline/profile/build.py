"""Usage profiles: per organisation (and per account) and day, features over trailing windows.

How a day is profiled (``build_profiles(settings, day)``):

1. **Daily summaries.** Each lake day in the lookback ``[day - 34, day]`` is summarised
   once into warehouse tables (one SQL file each): ``org_day`` (additive counts per org),
   ``account_day`` (per account), ``account_key_day`` (addresses and agents per account),
   ``org_learner_day`` (a bottom-k sample of learners per org), ``org_area_day`` (calls per
   postcode area) and ``npd_org_day`` (NPD queries checked against agreements). A day is
   rebuilt only when its lake files, the reference data or the profile code changed
   (fingerprints in ``profile_sources``), so a nightly run scans one new day of raw events.
2. **Windows.** The 1, 7 and 28-day windows (and the 28-day baseline before the 7-day
   window) are sums over those summaries (``profile_org_windows.sql``).
3. **Peers and history.** Each key feature gets a robust z-score against its peer group
   (org type x size band; median / MAD; groups under ``min_peers`` active orgs widen to the
   org type, then to all orgs), the peers' median in the feature's own units, and a change
   against its own baseline (``_hd``). An org with no ``expected_learners`` has the size
   band "unknown" (NULL) and is compared with its org type directly.
4. The day's rows of ``features`` and ``account_features`` are replaced in one transaction.

Organisations not in the register: LRS events whose UKPRN matches no registered org are
kept under the synthetic org id ``UKPRN-<ukprn>`` and NPD queries keep their own
``org_id``; each such org seen in the 28-day window gets a feature row with org_type
``unknown``, ``unregistered`` = 1 and ``unregistered_events_*`` (its calls and queries), which
rule REG-01 reads (``profile_org_register.sql``). They never form or shape a peer group:
they are compared with all organisations, as are their accounts. An org whose region is
unknown has NULL region features (``out_region_share_*``, ``plr_far*``): no evidence, not
"every learner lives elsewhere".

Distinct learners over windows: storing every learner of every org-day would cost about
as many rows as events. Instead each org-day keeps its k learners with the smallest key
(a uniform hash of the pseudonym). The union of daily samples contains each window's own
bottom-k sample, so window counts are exact below k and estimated above it (relative error
about ``1/sqrt(k)``), and ratios over learners (search follow-through, repeat learners,
median age) are exact on a uniform sample. The trade-off is precision for large orgs
against storage and speed; ``ProfileConfig.learner_sample_size`` sets k.

Empty and partial days: an organisation with no events has counts of 0 and shares of NULL
(no evidence, not zero); peer z-scores of NULL stay NULL and models read them as 0. A new
organisation with no history has NULL history changes. ``docs/features.md`` lists every
feature and is generated from :data:`ORG_FEATURES` / :data:`ACCOUNT_FEATURES`.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from detectors.rules import load_config
from pipeline.profile import define_macros, sql
from pipeline.store.lake import home_lock, lake_dir, partition_dir
from pipeline.store.warehouse import connect, replace_day, transaction
from schemas.detection import DetectionConfig, ProfileConfig, ProfileReport
from schemas.events import LrsLakeEvent, NpdLakeEvent
from schemas.features import (
    ACCOUNT_FEATURES,
    BASELINE_DAYS,
    ORG_FEATURES,
    WINDOW_DAYS,
    Feature,
    Kind,
)
from schemas.frames import polars_schema
from schemas.geography import AREA_REGION
from schemas.settings import Settings

LOOKBACK_DAYS = WINDOW_DAYS["7d"] + BASELINE_DAYS - 1
"""Days before the profiled day that its features read (34)."""
MAD_TO_SIGMA = 1.4826
"""MAD of a normal distribution times this is its standard deviation."""

SUMMARY_TABLES: dict[str, str] = {
    "account_day": "profile_account_day",
    "account_key_day": "profile_account_key_day",
    "org_learner_day": "profile_learner_day",
    "org_area_day": "profile_area_day",
    "org_day": "profile_org_day",
    "npd_org_day": "profile_npd_day",
}
"""Daily summary tables and the SQL file that builds each (in build order)."""
_SUMMARY_TEMP = {
    "account_day": "new_account_day",
    "account_key_day": "new_account_key_day",
    "org_learner_day": "new_learner_day",
    "org_area_day": "new_area_day",
    "org_day": "new_org_day",
    "npd_org_day": "new_npd_day",
}
_SUMMARY_SQL = ("npd_checks", "profile_day_events", *SUMMARY_TABLES.values())
_OUT_COLUMNS_ORG = ("org_id", "day", "org_type", "size_band", "peer_group", "peer_level")
_OUT_COLUMNS_ACCOUNT = ("org_id", "user_name", "day", "org_type")


# --- Daily summaries ----------------------------------------------------------------------


def _bind(query: str, pool: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``query`` names (``$name``), taken from ``pool``."""
    names = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", query))
    missing = names - pool.keys()
    if missing:
        raise KeyError(f"no value for SQL parameter(s) {sorted(missing)}")
    return {n: pool[n] for n in names}


def _run(con: duckdb.DuckDBPyConnection, name: str, pool: dict[str, Any]) -> None:
    q = sql(name)
    con.execute(q, _bind(q, pool))


def _params(cfg: ProfileConfig, settings: Settings, day: date) -> dict[str, Any]:
    return {
        "day": day,
        "tz": settings.timezone,
        "script_pattern": cfg.script_agent_pattern,
        "office_start": cfg.office_start_hour,
        "office_end": cfg.office_end_hour,
        "night_start": cfg.night_start_hour,
        "night_end": cfg.night_end_hour,
        "adult_age": cfg.adult_age,
        "older_adult_age": cfg.older_adult_age,
        "sweep_min": cfg.sweep_block_min_learners,
        "sample_size": cfg.learner_sample_size,
        "identifying_level": cfg.identifying_level,
    }


def _partition_files(settings: Settings, source: str, day: date) -> list[Path]:
    folder = partition_dir(settings.home, source, day)
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def _files_fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _code_fingerprint(cfg: ProfileConfig) -> str:
    # DuckDB's hash() keys addresses and agents: a new DuckDB version rebuilds summaries
    h = hashlib.sha256(f"{duckdb.__version__}|{cfg.model_dump_json()}".encode())
    for name in _SUMMARY_SQL:
        h.update(sql(name).encode())
    return h.hexdigest()[:16]


def _reference_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute(sql("profile_reference_fingerprint")).fetchall()
    return str(rows[0][0]) if rows and rows[0][0] is not None else "empty"


def first_lake_day(settings: Settings, source: str = "lrs") -> date | None:
    """The earliest event date with lake files for ``source`` (None when the lake is empty)."""
    root = lake_dir(settings.home, source)
    days = []
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith("event_date=") and any(child.glob("*.parquet")):
                try:
                    days.append(date.fromisoformat(child.name.split("=", 1)[1]))
                except ValueError:
                    continue
    return min(days) if days else None


def _table_columns(
    con: duckdb.DuckDBPyConnection, table: str, temporary: bool = False
) -> list[str] | None:
    """Column names of a table of the open database (or a temp table), None if absent."""
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() "
        "WHERE table_name = $t AND (database_name = 'temp') = $tmp AND schema_name = 'main' "
        "ORDER BY column_index",
        {"t": table, "tmp": temporary},
    ).fetchall()
    return [r[0] for r in rows] or None


def _ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS profile_sources (day DATE PRIMARY KEY, "
        "fingerprint VARCHAR, lrs_events BIGINT, npd_events BIGINT, built_at TIMESTAMPTZ)"
    )


UNREGISTERED_TABLE = "unregistered_orgs"
"""Warehouse table of every organisation not in the register that was ever profiled: org_id
(``UKPRN-<ukprn>`` for an LRS caller), ukprn, name (e.g. ``UKPRN 10009999 (not in the
register)``), first_seen and last_seen (days with a call or query). Kept when the register
later names the org, so the past stays readable; ``org_type`` is always ``unknown``."""


def _record_unregistered(con: duckdb.DuckDBPyConnection) -> int:
    """Upsert the unregistered orgs of temp ``org_register`` into :data:`UNREGISTERED_TABLE`."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {UNREGISTERED_TABLE} (org_id VARCHAR PRIMARY KEY, "
        "ukprn VARCHAR, name VARCHAR, first_seen DATE, last_seen DATE)"
    )
    con.execute(
        f"INSERT INTO {UNREGISTERED_TABLE} "
        "SELECT org_id, ukprn, name, first_seen, last_seen FROM org_register WHERE unregistered "
        "ON CONFLICT (org_id) DO UPDATE SET "
        "first_seen = least(first_seen, excluded.first_seen), "
        "last_seen = greatest(last_seen, excluded.last_seen)"
    )
    rows = con.execute("SELECT count(*) FROM org_register WHERE unregistered").fetchall()
    return int(rows[0][0]) if rows else 0


def _sync_summary_table(con: duckdb.DuckDBPyConnection, table: str, temp: str) -> bool:
    """Create ``table`` like ``temp``; when its columns changed, rebuild it (derived data).

    Returns True when the table was (re)created, so every day must be summarised again.
    """
    have = _table_columns(con, table)
    want = _table_columns(con, temp, temporary=True)
    if have == want:
        return False
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"CREATE TABLE {table} AS SELECT * FROM {temp} WITH NO DATA")
    return True


def _empty_partition(settings: Settings, source: str) -> Path:
    """An empty Parquet file shaped like a lake partition file (stands in for a day with
    no files, so the summary SQL has one shape of input)."""
    model = LrsLakeEvent if source == "lrs" else NpdLakeEvent
    path = settings.home / "tmp" / f"empty-{source}.parquet"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        schema = polars_schema(model)
        pl.DataFrame(schema={k: v for k, v in schema.items() if k != "event_date"}).write_parquet(
            path
        )
    return path


def _day_files(
    con: duckdb.DuckDBPyConnection, settings: Settings, day: date
) -> tuple[dict[str, list[str]], int, int]:
    """The lake files of ``day`` per source (an empty stand-in when none) and row counts."""
    out: dict[str, list[str]] = {}
    counts = []
    for source in ("lrs", "npd"):
        files = [str(f) for f in _partition_files(settings, source, day)]
        if files:
            rows = con.execute(
                "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata($f)", {"f": files}
            ).fetchall()
            counts.append(int(rows[0][0]) if rows else 0)
        else:
            files = [str(_empty_partition(settings, source))]
            counts.append(0)
        out[source] = files
    return out, counts[0], counts[1]


def _summarise_day(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    cfg: ProfileConfig,
    day: date,
    fingerprint: str,
) -> bool:
    """Rebuild every daily summary of ``day`` in one transaction. True if tables were reset."""
    files, n_lrs, n_npd = _day_files(con, settings, day)
    pool = {**_params(cfg, settings, day), "files": files["lrs"], "npd_files": files["npd"]}
    define_macros(con)
    _run(con, "profile_day_events", pool)
    for name in SUMMARY_TABLES.values():
        _run(con, name, pool)
    reset = False
    for table, temp in _SUMMARY_TEMP.items():
        reset |= _sync_summary_table(con, table, temp)
    if reset:
        con.execute("DELETE FROM profile_sources")
    source = (
        "INSERT OR REPLACE INTO profile_sources VALUES ($d, $f, $l, $n, now())",
        {"d": day, "f": fingerprint, "l": n_lrs, "n": n_npd},
    )
    replace_day(con, day, _SUMMARY_TEMP, also=[source])
    return reset


def ensure_summaries(
    con: duckdb.DuckDBPyConnection, settings: Settings, cfg: ProfileConfig, day: date
) -> list[date]:
    """Make the daily summaries of ``[day - 34, day]`` current; return the days rebuilt.

    Also drops summaries older than ``summary_retention_days`` before ``day``.
    """
    _ensure_tables(con)
    _register_area_region(con)
    code = _code_fingerprint(cfg)
    ref = _reference_fingerprint(con)
    days = [day - timedelta(days=i) for i in range(LOOKBACK_DAYS, -1, -1)]
    have = dict(
        con.execute(
            "SELECT day, fingerprint FROM profile_sources WHERE day BETWEEN $lo AND $hi",
            {"lo": days[0], "hi": day},
        ).fetchall()
    )
    built: list[date] = []
    pending = list(days)
    while pending:
        d = pending.pop(0)
        files = _partition_files(settings, "lrs", d) + _partition_files(settings, "npd", d)
        fp = f"{code}:{ref}:{_files_fingerprint(files)}"
        if have.get(d) == fp:
            continue
        if _summarise_day(con, settings, cfg, d, fp):
            # tables were rebuilt with new columns: every earlier day must be redone
            pending = [x for x in days if x < d and x not in pending] + pending
            have = {}
        built.append(d)
    cutoff = day - timedelta(days=cfg.summary_retention_days)
    with transaction(con):
        for table in SUMMARY_TABLES:
            if _table_columns(con, table):
                con.execute(f"DELETE FROM {table} WHERE day < $c", {"c": cutoff})
        con.execute("DELETE FROM profile_sources WHERE day < $c", {"c": cutoff})
    return sorted(set(built))


def _register_area_region(con: duckdb.DuckDBPyConnection) -> None:
    frame = pl.DataFrame(
        {"area": list(AREA_REGION), "region": [r.value for r in AREA_REGION.values()]}
    )
    con.register("area_region_src", frame)
    con.execute("CREATE OR REPLACE TEMP TABLE area_region AS SELECT * FROM area_region_src")
    con.unregister("area_region_src")


def _ensure_summary_tables_exist(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Summary tables exist (possibly empty) so window SQL can run on an empty warehouse."""
    if all(_table_columns(con, t) for t in SUMMARY_TABLES):
        return
    # Running the summary SQL on empty inputs gives each table its schema.
    pool = {
        **_params(ProfileConfig(), settings, date(2000, 1, 1)),
        "files": [str(_empty_partition(settings, "lrs"))],
        "npd_files": [str(_empty_partition(settings, "npd"))],
    }
    _register_area_region(con)
    define_macros(con)
    _run(con, "profile_day_events", pool)
    for name in SUMMARY_TABLES.values():
        _run(con, name, pool)
    for table, temp in _SUMMARY_TEMP.items():
        if not _table_columns(con, table):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM {temp} WITH NO DATA")


# --- Windows, peers, history --------------------------------------------------------------


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


def _transform(f: Feature) -> pl.Expr:
    col = pl.col(f.name).cast(pl.Float64)
    return col.log1p() if f.kind is Kind.tally else col


def _floor(f: Feature, cfg: ProfileConfig) -> float:
    if f.kind is Kind.tally:
        return cfg.log_scale_floor
    if f.kind is Kind.share:
        return cfg.share_scale_floor
    return cfg.value_scale_floor


def peer_relative(
    frame: pl.DataFrame,
    features: list[Feature],
    cfg: ProfileConfig,
    levels: list[list[str]],
    active: pl.Expr,
) -> pl.DataFrame:
    """Add ``<f>_pz`` (robust z) and ``<f>_pm`` (peer median) for each feature.

    ``levels`` lists the grouping columns from narrowest to widest (``[]`` = everyone).
    An org's level is the narrowest whose group holds at least ``min_peers`` active rows
    (those for which ``active`` is true; only they form the peer distributions). The
    chosen level index is returned in ``peer_level``. A NULL value gives a NULL z-score.
    """
    work = frame.with_columns(
        active.fill_null(False).alias("_active"),
        *[_transform(f).alias(f"_t_{f.name}") for f in features],
    )
    pool = work.filter(pl.col("_active"))
    tcols = [f"_t_{f.name}" for f in features]
    level_expr: pl.Expr | None = None
    for i, keys in enumerate(levels):
        sfx = f"_L{i}"
        if keys:
            meds = pool.group_by(keys).agg(
                pl.len().alias(f"_n{sfx}"), *[pl.col(t).median().alias(t + "_med") for t in tcols]
            )
            mads = (
                pool.join(meds, on=keys, how="left")
                .group_by(keys)
                .agg(
                    *[
                        (pl.col(t) - pl.col(t + "_med")).abs().median().alias(t + "_mad")
                        for t in tcols
                    ]
                )
            )
            stats = meds.join(mads, on=keys, how="left")
            stats = stats.rename(
                {c: c + sfx for c in stats.columns if c not in keys and c != f"_n{sfx}"}
            )
            work = work.join(stats, on=keys, how="left")
        else:
            med_row = pool.select(*[pl.col(t).median().alias(t + "_med") for t in tcols])
            mad_row = (
                pool.select(
                    *[
                        (pl.col(t) - med_row[t + "_med"][0]).abs().median().alias(t + "_mad")
                        for t in tcols
                    ]
                )
                if pool.height
                else med_row.rename({t + "_med": t + "_mad" for t in tcols})
            )
            work = work.with_columns(
                pl.lit(pool.height).alias(f"_n{sfx}"),
                *[
                    pl.lit(med_row[t + "_med"][0], dtype=pl.Float64).alias(t + "_med" + sfx)
                    for t in tcols
                ],
                *[
                    pl.lit(mad_row[t + "_mad"][0], dtype=pl.Float64).alias(t + "_mad" + sfx)
                    for t in tcols
                ],
            )
        ok = pl.col(f"_n{sfx}").fill_null(0) >= cfg.min_peers
        last = i == len(levels) - 1
        choice = pl.lit(i) if last else pl.when(ok).then(pl.lit(i))
        level_expr = (
            choice
            if level_expr is None
            else pl.when(level_expr.is_not_null()).then(level_expr).otherwise(choice)
        )
    assert level_expr is not None
    work = work.with_columns(level_expr.cast(pl.Int64).alias("peer_level"))
    outs = []
    for f in features:
        t = f"_t_{f.name}"

        def pick(stat: str, t: str = t) -> pl.Expr:
            e: pl.Expr = pl.col(f"{t}_{stat}_L{len(levels) - 1}")
            for i in range(len(levels) - 2, -1, -1):
                e = pl.when(pl.col("peer_level") == i).then(pl.col(f"{t}_{stat}_L{i}")).otherwise(e)
            return e

        med, mad = pick("med"), pick("mad")
        scale = pl.max_horizontal(mad.fill_null(0.0) * MAD_TO_SIGMA, pl.lit(_floor(f, cfg)))
        z = ((pl.col(t) - med) / scale).clip(-cfg.z_clip, cfg.z_clip)
        pm = med.exp() - 1 if f.kind is Kind.tally else med
        outs += [z.alias(f"{f.name}_pz"), pm.alias(f"{f.name}_pm")]
    work = work.with_columns(outs)
    keep = [c for c in work.columns if not c.startswith("_")]
    return work.select(keep)


def _history(frame: pl.DataFrame, features: list[Feature], baseline_days: int) -> pl.DataFrame:
    """Add ``<f>_hd``: change of a 1d/7d feature against the 28-day baseline (b28)."""
    exprs = []
    for f in features:
        base = pl.col(f"{f.base}_b28").cast(pl.Float64)
        now = pl.col(f.name).cast(pl.Float64)
        if baseline_days <= 0:
            e = pl.lit(None, dtype=pl.Float64)
        elif f.kind is Kind.tally:
            span = WINDOW_DAYS[f.window]
            e = ((1 + now / span) / (1 + base / baseline_days)).log()
        else:
            e = now - base
        exprs.append(e.alias(f"{f.name}_hd"))
    return frame.with_columns(exprs)


def _band_label(band: int, edges: tuple[int, ...]) -> str:
    lo = 0 if band == 0 else edges[band - 1]
    return f"{lo}+" if band >= len(edges) else f"{lo}-{edges[band] - 1}"


def compute_org_features(
    con: duckdb.DuckDBPyConnection, settings: Settings, cfg: ProfileConfig, day: date
) -> pl.DataFrame:
    """The ``features`` rows of ``day`` (one per organisation), from current summaries."""
    first = first_lake_day(settings)
    d7 = day - timedelta(days=WINDOW_DAYS["7d"] - 1)
    d28 = day - timedelta(days=WINDOW_DAYS["28d"] - 1)
    b_hi = d7 - timedelta(days=1)
    b_lo = d7 - timedelta(days=BASELINE_DAYS)
    covered_from = max(b_lo, first) if first else None
    baseline_days = (b_hi - covered_from).days + 1 if covered_from and covered_from <= b_hi else 0
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
    }
    _run(con, "profile_org_register", pool)
    _run(con, "profile_org_windows", pool)
    _run(con, "profile_org_facts", pool)
    long = con.sql("SELECT * FROM org_windows").pl()
    wide = _wide(long, ["org_id"], ("1d", "7d", "28d", "b28"))
    facts = con.sql("SELECT * FROM org_facts").pl()
    frame = facts.join(wide, on="org_id", how="left")
    base = [f for f in ORG_FEATURES if f.kind not in (Kind.z, Kind.peer, Kind.delta)]
    frame = _history(frame, [f for f in base if f.history], baseline_days)
    # Peer groups: org type x size band, widened to the org type (also for an org whose
    # size is unknown: a NULL band never matches a group), then to all orgs. Unregistered
    # orgs never form or shape a peer group (they are not in `active`), so their own
    # groups are empty and they are compared with all organisations.
    frame = peer_relative(
        frame,
        [f for f in base if f.key],
        cfg,
        [["org_type", "size_band"], ["org_type"], []],
        (pl.col("calls_28d") > 0) & (pl.col("unregistered") == 0),
    )
    edges = cfg.size_band_edges
    frame = frame.with_columns(
        pl.lit(day).alias("day"),
        pl.struct("org_type", "size_band", "peer_level")
        .map_elements(
            lambda s: (
                f"{s['org_type']} / {_band_label(int(s['size_band']), edges)} learners"
                if s["peer_level"] == 0
                else (s["org_type"] if s["peer_level"] == 1 else "all organisations")
            ),
            return_dtype=pl.String,
        )
        .alias("peer_group"),
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
    con: duckdb.DuckDBPyConnection, cfg: ProfileConfig, day: date
) -> pl.DataFrame:
    """The ``account_features`` rows of ``day``: accounts with a call in the 7-day window."""
    d7 = day - timedelta(days=WINDOW_DAYS["7d"] - 1)
    _run(con, "profile_account_windows", {"day": day, "d7": d7})
    long = con.sql("SELECT * FROM account_windows").pl()
    wide = _wide(long, ["org_id", "user_name"], ("1d", "7d"))
    # temp `org_register` (built by compute_org_features on this connection) also holds
    # unregistered orgs (org_type 'unknown'); their accounts are compared with all accounts
    orgs = con.sql("SELECT org_id, org_type, unregistered FROM org_register").pl()
    frame = wide.join(orgs, on="org_id", how="left")
    base = [f for f in ACCOUNT_FEATURES if f.kind not in (Kind.z, Kind.peer, Kind.delta)]
    frame = peer_relative(
        frame,
        [f for f in base if f.key],
        cfg,
        [["org_type"], []],
        (pl.col("calls_7d") > 0) & ~pl.col("unregistered").fill_null(False),
    )
    frame = frame.with_columns(pl.lit(day).alias("day"))
    return frame.select(
        *[pl.col(c) for c in _OUT_COLUMNS_ACCOUNT],
        *[pl.col(f.name).cast(pl.Float64) for f in ACCOUNT_FEATURES],
    ).sort("org_id", "user_name")


def _replace_day(
    con: duckdb.DuckDBPyConnection, frames: dict[str, pl.DataFrame], day: date
) -> None:
    """Replace ``day``'s rows of each table with its frame, all in one transaction."""
    for table, frame in frames.items():
        have = _table_columns(con, table)
        if have is not None and have != frame.columns:
            # the registry changed: features are derived data, earlier days re-profile
            con.execute(f"DROP TABLE {table}")
            have = None
        if have is None:
            con.register("_shape", frame.head(0))
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM _shape")
            con.unregister("_shape")
    replace_day(con, day, frames)


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
        _ensure_summary_tables_exist(con, settings)
        org = compute_org_features(con, settings, cfg, day)
        acc = compute_account_features(con, cfg, day)
        _replace_day(con, {"features": org, "account_features": acc}, day)
        _record_unregistered(con)
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


def read_features(con: duckdb.DuckDBPyConnection, day: date, level: str = "org") -> pl.DataFrame:
    """The stored feature rows of ``day`` (empty frame when the day was not profiled)."""
    table = "features" if level == "org" else "account_features"
    if _table_columns(con, table) is None:
        return pl.DataFrame()
    return con.sql(f"SELECT * FROM {table} WHERE day = $d", params={"d": day}).pl()

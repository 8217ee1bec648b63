"""The daily summary tables: each lake day summarised once, and the cache that says when
a summary is current.

Each lake day in the lookback ``[day - 34, day]`` (:data:`LOOKBACK_DAYS`) is summarised
into warehouse tables, one SQL file each (:data:`SUMMARY_TABLES`): ``org_day`` (additive
counts per org), ``account_day`` (per account), ``account_key_day`` (addresses and agents
per account), ``org_learner_day`` (a bottom-k sample of learners per org),
``org_area_day`` (calls per postcode area) and ``npd_org_day`` (NPD queries checked
against agreements). A day is rebuilt only when its lake files, the reference data or the
profile code changed (fingerprints in ``profile_sources``), so a nightly run scans one new
day of raw events; summaries older than ``summary_retention_days`` are dropped. The
windows over these summaries are :mod:`pipeline.profile.build`'s.

Distinct learners over windows: storing every learner of every org-day would cost about
as many rows as events. Instead each org-day keeps its k learners with the smallest key
(a uniform hash of the pseudonym). The union of daily samples contains each window's own
bottom-k sample, so window counts are exact below k and estimated above it (relative error
about ``1/sqrt(k)``), and ratios over learners (search follow-through, repeat learners,
median age) are exact on a uniform sample. The trade-off is precision for large orgs
against storage and speed; ``ProfileConfig.learner_sample_size`` sets k.

Organisations not in the register that were ever profiled are recorded in
:data:`UNREGISTERED_TABLE` (:func:`record_unregistered`).
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.profile import define_macros, run_sql, sql
from pipeline.profile.store import table_columns
from pipeline.store.lake import lake_dir, partition_dir
from pipeline.store.warehouse import replace_day, transaction
from schemas.detection import ProfileConfig
from schemas.events import LrsLakeEvent, NpdLakeEvent
from schemas.features import LOOKBACK_DAYS
from schemas.frames import polars_schema
from schemas.geography import AREA_REGION
from schemas.settings import Settings

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


def record_unregistered(con: duckdb.DuckDBPyConnection) -> int:
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
    have = table_columns(con, table)
    want = table_columns(con, temp, temporary=True)
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
    run_sql(con, "profile_day_events", pool)
    for name in SUMMARY_TABLES.values():
        run_sql(con, name, pool)
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
            if table_columns(con, table):
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


def ensure_summary_tables_exist(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Summary tables exist (possibly empty) so window SQL can run on an empty warehouse."""
    if all(table_columns(con, t) for t in SUMMARY_TABLES):
        return
    # Running the summary SQL on empty inputs gives each table its schema.
    pool = {
        **_params(ProfileConfig(), settings, date(2000, 1, 1)),
        "files": [str(_empty_partition(settings, "lrs"))],
        "npd_files": [str(_empty_partition(settings, "npd"))],
    }
    _register_area_region(con)
    define_macros(con)
    run_sql(con, "profile_day_events", pool)
    for name in SUMMARY_TABLES.values():
        run_sql(con, name, pool)
    for table, temp in _SUMMARY_TEMP.items():
        if not table_columns(con, table):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM {temp} WITH NO DATA")

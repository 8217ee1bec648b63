"""Evidence of rule hits: the counts a hit read and a few example events from the lake.

:func:`attach_evidence` reads the 7-day window of LRS (and NPD) partitions for the orgs and
accounts with rule hits and attaches up to ``ranking.evidence_examples`` pseudonymised
events per hit (today's first; SQL in ``sql/rank_evidence.sql`` and
``sql/rank_npd_evidence.sql``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import duckdb
import polars as pl

from pipeline.profile import define_macros
from pipeline.rank import sql
from pipeline.rank.listing import org_directory
from pipeline.rank.reasons import finite
from pipeline.store.lake import partition_dir
from schemas.detection import (
    DetectionConfig,
    Evidence,
    ExampleEvent,
    RuleHit,
)
from schemas.features import (
    WINDOW_DAYS,
)
from schemas.settings import Settings


def _window_files(settings: Settings, source: str, lo: date, hi: date) -> list[str]:
    out: list[str] = []
    d = lo
    while d <= hi:
        folder = partition_dir(settings.home, source, d)
        if folder.is_dir():
            out += [str(p) for p in sorted(folder.glob("*.parquet"))]
        d += timedelta(days=1)
    return out


def attach_evidence(
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
            v = finite(row.get(name))
            if v is not None:
                counts[name] = round(v, 4)
        ex = examples.get((h.org_id, h.user_name, rule.evidence.value), [])
        out.append(h.model_copy(update={"evidence": Evidence(counts=counts, examples=ex)}))
    return out

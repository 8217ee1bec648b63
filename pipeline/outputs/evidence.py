"""Evidence packs: everything behind one organisation's flag on one day, sealed by hashes.

``build_pack(settings, org_id, day, out)`` writes a folder and a zip of it for referral::

    <out>/README.md         what the pack holds and how to check it (for the reader)
    <out>/summary.json      the organisation, its score, rank, rules, reasons and accounts
    <out>/features.csv      key features against the peer group (value, peer median, peer z)
    <out>/peers.csv         the peer group's distribution of each key feature (quantiles)
    <out>/rule_hits.json    each rule that fired, its definition and its evidence
    <out>/timeline.csv      daily score, rank and volumes over the timeline window
    <out>/events_lrs.csv    the org's pseudonymised LRS events of the window, each with the
                            rules it lies behind (``rules``)
    <out>/events_npd.csv    the org's NPD queries of the window with the agreement checks
    <out>/deliveries.csv    the raw delivery files those events came from, with the SHA-256
                            the ingest ledger recorded when they were read
    <out>/verdicts.json     the analysts' decisions on the organisation (triage history)
    <out>/versions.json     code, detector and rule versions; library versions
    <out>/manifest.json     the SHA-256 and size of every other file
    <out>.zip               the same files under ``<out name>/``

``verify_pack(path)`` re-hashes a folder or zip against its manifest. The SHA-256 of
``manifest.json`` (``PackReport.manifest_sha256``) fingerprints the whole pack: recorded
outside it, it shows later that no file was changed, added or removed.

Only pseudonymised data goes in: the lake holds no ULN, date of birth or postcode (ingest
replaced them with keyed pseudonyms, ages and postcode areas) and events are read by named
columns. Free-text fields in the CSV files that a spreadsheet would run as a formula
(leading ``= + - @``, tab or carriage return) get a leading apostrophe.

The helpers above ``build_pack`` (timeline, peers, events, verdicts, versions) are also what
the triage notebook calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from detectors.registry import configured_models
from detectors.rules import load_config
from pipeline.outputs import sql
from pipeline.outputs.safe_text import neutralise_frame as _neutralise
from pipeline.profile import define_macros
from pipeline.profile.peers import peer_members
from pipeline.profile.store import read_features
from pipeline.rank import sql as rank_sql
from pipeline.rank.listing import NotProfiledError
from pipeline.rank.story import explain
from pipeline.store.lake import partition_dir
from pipeline.store.version import REPO, code_version
from pipeline.store.warehouse import connect
from pipeline.triage.verdicts import history
from schemas.detection import TIMELINE_DAYS, DetectionConfig, OrgExplanation, RuleConfig, RuleHit
from schemas.evidence import (
    PACK_FORMAT,
    EvidenceConfig,
    Manifest,
    ManifestEntry,
    PackReport,
    Verification,
    VerifyLimits,
)
from schemas.features import FEATURES, Feature, model_features
from schemas.settings import Settings

MANIFEST = "manifest.json"
PEER_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
NPD_CHECKS = (
    "no_agreement",
    "outside_validity",
    "outside_datasets",
    "outside_years",
    "beyond_identifiability",
    "beyond_sensitivity",
    "above_max_rows",
)
_LIBRARIES = ("polars", "duckdb", "numpy", "scikit-learn", "pyod", "pyarrow", "pydantic")


class PackExistsError(FileExistsError):
    """The output folder (or its zip) already exists: a pack is never overwritten."""


# --- Case data (also used by the notebooks) -----------------------------------------------


def _window_files(home: Path, source: str, first: date, last: date) -> list[str]:
    out: list[str] = []
    d = first
    while d <= last:
        folder = partition_dir(home, source, d)
        if folder.is_dir():
            out += [str(p) for p in sorted(folder.glob("*.parquet"))]
        d += timedelta(days=1)
    return out


def _org(con: duckdb.DuckDBPyConnection, org_id: str) -> dict[str, Any]:
    cur = con.execute("SELECT * FROM organisations WHERE org_id = $o", {"o": org_id})
    names = [d[0] for d in cur.description or []]
    rows = cur.fetchall()
    if not rows:
        raise KeyError(f"unknown organisation {org_id!r}")
    return dict(zip(names, rows[0], strict=True))


def detected_days(settings: Settings) -> list[date]:
    """Every day with detection results, oldest first (empty for a new home)."""
    with connect(settings, read_only=True) as con:
        rows = con.execute("SELECT DISTINCT day FROM scores ORDER BY day").fetchall()
    return [r[0] for r in rows]


def activity_timeline(
    settings: Settings, org_id: str, day: date, days: int = TIMELINE_DAYS
) -> pl.DataFrame:
    """One row per day of ``[day - days + 1, day]``: the org's score and rank (NULL when not
    scored or not in the stored list), rules fired, and its daily volumes from its features
    (LRS calls, distinct learners, active accounts; NPD queries and agreement breaches; 0
    when silent, NULL when the day was not profiled).
    """
    first = day - timedelta(days=days - 1)
    with connect(settings, read_only=True) as con:
        _org(con, org_id)
        frame = con.sql(
            sql("evidence_timeline"), params={"org": org_id, "first": first, "last": day}
        ).pl()
    return frame


def peer_distribution(
    settings: Settings, org_id: str, day: date, features: Sequence[str] | None = None
) -> pl.DataFrame:
    """The values of ``features`` (default: every key feature) across the org's peer group
    on ``day``, long: ``feature, org_id, value, is_org``.

    The peer group is the one the org was compared with (``peer_group``, as the profile
    defines it: :func:`pipeline.profile.peers.peer_members`): active organisations in the
    register (an LRS call in 28 days) of its type and size band, or of its type, or all of
    them when the narrower group was too small. The org itself is always included.
    """
    names = list(features) if features is not None else [f.name for f in _key_features()]
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise KeyError(f"unknown feature(s): {', '.join(unknown)}")
    with connect(settings, read_only=True) as con:
        _org(con, org_id)
        frame = read_features(con, day, "org")
    if frame.is_empty():
        raise NotProfiledError(f"no features for {day}: run the profile step first")
    own = frame.filter(pl.col("org_id") == org_id)
    if own.is_empty():
        raise KeyError(f"organisation {org_id!r} has no features on {day}")
    peers = peer_members(frame, org_id)
    group = pl.concat([peers.filter(pl.col("org_id") != org_id), own])
    return (
        group.select("org_id", *names)
        .unpivot(index="org_id", on=names, variable_name="feature", value_name="value")
        .with_columns(
            pl.col("value").cast(pl.Float64).fill_nan(None),
            (pl.col("org_id") == org_id).alias("is_org"),
        )
        .select("feature", "org_id", "value", "is_org")
    )


def peer_summary(distribution: pl.DataFrame) -> pl.DataFrame:
    """Per feature of a :func:`peer_distribution`: the org's value, ``group_size`` and
    quantiles of the peer group (the org included, as in the peer median of its reasons;
    NULL values left out), and the share of the other members below the org."""
    own = distribution.filter(pl.col("is_org")).select("feature", org_value="value")
    known = distribution.filter(pl.col("value").is_not_null())
    stats = known.group_by("feature").agg(
        pl.len().alias("group_size"),
        *[pl.col("value").quantile(q, "linear").round(6).alias(f"p{round(q * 100)}")
          for q in PEER_QUANTILES],
    )  # fmt: skip
    below = (
        known.filter(~pl.col("is_org"))
        .join(own, on="feature")
        .group_by("feature")
        .agg((pl.col("value") < pl.col("org_value")).mean().round(4).alias("share_of_peers_below"))
    )
    order = {f: i for i, f in enumerate(dict.fromkeys(distribution["feature"].to_list()))}
    return (
        own.join(stats, on="feature", how="left")
        .join(below, on="feature", how="left")
        .with_columns(pl.col("group_size").fill_null(0))
        .sort(pl.col("feature").replace_strict(order, return_dtype=pl.Int64))
        .select("feature", "org_value", "group_size",
                *[f"p{round(q * 100)}" for q in PEER_QUANTILES],
                "share_of_peers_below")
    )  # fmt: skip


def _key_features() -> list[Feature]:
    return [f for f in FEATURES.values() if f.key]


def _rule_days(rule: RuleConfig) -> int:
    """The window a rule reads: 1 day when its main feature is a 1-day feature, else 7."""
    return 1 if "_1d" in rule.feature else 7


def _keep(frame: pl.DataFrame, limit: int) -> tuple[pl.DataFrame, bool]:
    """At most ``limit`` events: those behind a rule first, then the latest; time order."""
    if frame.height <= limit:
        return frame, False
    kept = (
        frame.sort(
            [pl.col("rules") == "", "occurred_at", "event_id"], descending=[False, True, False]
        )
        .head(limit)
        .sort("occurred_at", "event_id")
    )
    return kept, True


def _tag(frame: pl.DataFrame, matches: dict[str, set[str]], column: str = "rules") -> pl.DataFrame:
    tags = pl.DataFrame(
        {"event_id": list(matches), column: [";".join(sorted(v)) for v in matches.values()]},
        schema={"event_id": pl.String, column: pl.String},
    )
    return (
        frame.join(tags, on="event_id", how="left", maintain_order="left")
        .with_columns(pl.col(column).fill_null(""))
        .sort("occurred_at", "event_id")
    )


def lrs_events(
    settings: Settings,
    org_id: str,
    day: date,
    hits: Sequence[RuleHit] = (),
    config: DetectionConfig | None = None,
    window_days: int = 7,
) -> pl.DataFrame:
    """The org's LRS events of ``[day - window_days + 1, day]`` (pseudonymised columns of
    ``evidence_lrs_events.sql``) with ``rules``: the ids of the ``hits`` each event lies
    behind (``;``-separated), by each rule's evidence kind as ``rank_evidence.sql`` defines
    it, within the rule's window and, for an account rule, that account's events only."""
    cfg = config or load_config()
    first = day - timedelta(days=window_days - 1)
    files = _window_files(settings.home, "lrs", first, day)
    with connect(settings, read_only=True) as con:
        ukprn = _org(con, org_id).get("ukprn")
        if not (files and ukprn):
            return _empty_lrs()
        con.execute(sql("evidence_lrs_events"), {"files": files, "ukprn": ukprn})
        frame = con.sql("SELECT * FROM evidence_lrs ORDER BY occurred_at, event_id").pl()
        by_id = {r.id: r for r in cfg.rules}
        wanted: dict[tuple[str, str], list[RuleConfig]] = defaultdict(list)
        for h in hits:
            rule = by_id.get(h.rule_id)
            if rule is not None and rule.evidence.value != "npd":
                wanted[(h.user_name, rule.evidence.value)].append(rule)
        matches: dict[str, set[str]] = defaultdict(set)
        if wanted and frame.height:
            con.register(
                "wanted",
                pl.DataFrame(
                    [{"org_id": org_id, "ukprn": ukprn, "user_name": u, "kind": k}
                     for u, k in sorted(wanted)],
                    schema={"org_id": pl.String, "ukprn": pl.String, "user_name": pl.String,
                            "kind": pl.String},
                ),
            )  # fmt: skip
            prof = cfg.profile
            define_macros(con)
            rows = con.execute(
                rank_sql("rank_evidence"),
                {
                    "examples": frame.height,
                    "tz": settings.timezone,
                    "office_start": prof.office_start_hour,
                    "office_end": prof.office_end_hour,
                    "script_pattern": prof.script_agent_pattern,
                },
            ).fetchall()
            con.unregister("wanted")
            dates = dict(zip(frame["event_id"], frame["event_date"], strict=True))
            for _org_id, user_key, kind, event_id, *_ in rows:
                for rule in wanted[(user_key, kind)]:
                    if dates[event_id] > day - timedelta(days=_rule_days(rule)):
                        matches[event_id].add(rule.id)
    return _tag(frame, matches)


def _empty_lrs() -> pl.DataFrame:
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "event_date": pl.Date, "occurred_at": pl.Datetime("us", "UTC"), "event_id": pl.String,
        "ukprn": pl.String, "user_name": pl.String, "channel": pl.String, "operation": pl.String,
        "learner_pid": pl.String, "uln_block_pid": pl.String, "uln_valid": pl.Boolean,
        "learner_age": pl.Int64, "postcode_area": pl.String, "response_code": pl.String,
        "result_count": pl.Int64, "batch_size": pl.Int64, "client_ip": pl.String,
        "user_agent": pl.String, "delivery_day": pl.Date, "source_file": pl.String,
        "source_line": pl.Int64, "rules": pl.String,
    }  # fmt: skip
    return pl.DataFrame(schema=schema)


def npd_events(
    settings: Settings,
    org_id: str,
    day: date,
    hits: Sequence[RuleHit] = (),
    config: DetectionConfig | None = None,
    window_days: int = 7,
) -> pl.DataFrame:
    """The org's NPD queries of the window, each with the agreement checks of
    ``npd_checks.sql`` as boolean columns and ``rules``: the NPD rules it lies behind
    (an ``npd_<check>_7d`` rule lies behind the queries failing ``<check>``)."""
    cfg = config or load_config()
    first = day - timedelta(days=window_days - 1)
    files = _window_files(settings.home, "npd", first, day)
    with connect(settings, read_only=True) as con:
        _org(con, org_id)
        if not files:
            return _empty_npd()
        define_macros(con)
        frame = con.sql(sql("evidence_npd_events"), params={"files": files, "org_id": org_id}).pl()
    by_id = {r.id: r for r in cfg.rules}
    matches: dict[str, set[str]] = defaultdict(set)
    for h in hits:
        rule = by_id.get(h.rule_id)
        if rule is None or rule.evidence.value != "npd":
            continue
        check = re.sub(r"^npd_|_(1d|7d|28d)$", "", rule.feature)
        failed = (
            pl.col(check)
            if check in NPD_CHECKS
            else pl.any_horizontal([pl.col(c) for c in NPD_CHECKS])
        )
        since = day - timedelta(days=_rule_days(rule) - 1)
        for event_id in frame.filter(failed & (pl.col("event_date") >= since))["event_id"]:
            matches[event_id].add(rule.id)
    return _tag(frame, matches)


def _empty_npd() -> pl.DataFrame:
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "event_date": pl.Date, "occurred_at": pl.Datetime("us", "UTC"), "event_id": pl.String,
        "org_id": pl.String, "user_name": pl.String, "agreement_ref": pl.String,
        "channel": pl.String, "dataset": pl.String, "items": pl.String,
        "min_identifiability": pl.Int64, "max_sensitivity": pl.String, "year_from": pl.Int64,
        "year_to": pl.Int64, "rows_returned": pl.Int64,
    }  # fmt: skip
    schema.update({c: pl.Boolean for c in NPD_CHECKS})
    schema.update(
        {"delivery_day": pl.Date, "source_file": pl.String, "source_line": pl.Int64,
         "rules": pl.String}
    )  # fmt: skip
    return pl.DataFrame(schema=schema)


def deliveries(settings: Settings, files: Sequence[str]) -> pl.DataFrame:
    """Ingest-ledger rows of the given delivery files (``source_file`` as in the lake):
    when each was read, by which run, and the SHA-256 of the raw file."""
    wanted = sorted(set(files))
    with connect(settings, read_only=True) as con:
        return con.sql(
            "SELECT source_file, source, delivery_day, file_sha256, run_id, status, rows_read, "
            "rows_written, finished_at FROM ingest_ledger WHERE list_contains($files, "
            "source_file) AND status = 'committed' ORDER BY source_file, finished_at",
            params={"files": wanted},
        ).pl()


def verdict_history(settings: Settings, org_id: str) -> tuple[list[dict[str, Any]], str]:
    """The analysts' decisions on ``org_id`` (``pipeline.triage.verdicts.history``), oldest
    first, as JSON-ready dicts, and a note."""
    decisions = history(settings, org_id=org_id)
    rows = [d.model_dump(mode="json") for d in decisions]
    return rows, f"{len(rows)} decision(s) recorded"


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _source_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def versions(settings: Settings, config: DetectionConfig | None = None) -> dict[str, Any]:
    """Code, detector and rule versions in force now, and the library versions."""
    cfg = config or load_config()
    libs = {}
    for name in _LIBRARIES:
        try:
            libs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libs[name] = "not installed"
    warehouse_id = settings.home / ".warehouse-id"
    features = list(cfg.models.org_features) or model_features("org")
    rules_json = json.dumps([r.model_dump(mode="json") for r in cfg.rules], sort_keys=True)
    return {
        "code_version": code_version(),
        "detection_config_sha256": _sha256_bytes(cfg.model_dump_json().encode()),
        "rules": {
            "sha256": _sha256_bytes(rules_json.encode()),
            "ids": [r.id for r in cfg.rules],
        },
        "detectors": {
            "source_sha256": _source_hash(REPO / "detectors"),
            "rules": {"class": "RuleDetector", "rules": len(cfg.rules)},
            **{
                k.name: {"class": k.cls.__name__, **k.settings(cfg.models)}
                for k in configured_models(cfg)
            },
            "ensemble": cfg.ensemble.model_dump(mode="json"),
            "model_features": features,
        },
        "libraries": {"python": platform.python_version(), **libs},
        "warehouse_id": warehouse_id.read_text().strip() if warehouse_id.is_file() else None,
    }


# --- Building a pack ----------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=False, default=str) + "\n").encode()


def _csv(frame: pl.DataFrame) -> bytes:
    return _neutralise(frame).write_csv(datetime_format="%Y-%m-%dT%H:%M:%SZ").encode()


def _summary(ex: OrgExplanation, org: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": PACK_FORMAT,
        "org_id": ex.org_id,
        "org_name": ex.org_name,
        "org_type": ex.org_type,
        "ukprn": org.get("ukprn"),
        "status": org.get("status"),
        "region": org.get("region"),
        "day": ex.day.isoformat(),
        "peer_group": ex.peer_group,
        "score": ex.score,
        "rank": ex.rank,
        "rank_note": "place in the list detect stored for the day, before verdicts applied",
        "triage_status": ex.triage_status,
        "triage_detail": ex.triage_detail,
        "rules": sorted({h.rule_id for h in ex.rule_hits}),
        "reasons": [r.model_dump(mode="json") for r in ex.reasons],
        "accounts": [a.model_dump(mode="json") for a in ex.accounts],
        **report,
    }


def _readme(summary: dict[str, Any], files: dict[str, str]) -> str:
    reasons = "\n".join(f"- {r['text']}" for r in summary["reasons"]) or "- (none stored)"
    rank = (
        f"rank {summary['rank']} in the list as detected (before verdicts)"
        if summary["rank"]
        else "outside the stored list"
    )
    table = "\n".join(f"| `{name}` | {what} |" for name, what in files.items())
    return f"""# Evidence pack: {summary["org_id"]} {summary["org_name"]}, {summary["day"]}

Built by accesswatch {summary["code_version"]} at {summary["generated_at"]}.

{summary["org_type"]}, compared with {summary["peer_group"] or "its peers"}: score
{summary["score"]:.1f} of 100 on {summary["day"]}, {rank}. Rules that fired:
{", ".join(summary["rules"]) or "none"}. Triage status: {summary["triage_status"] or "none"}
{f"({summary['triage_detail']})" if summary["triage_detail"] else ""}

{reasons}

## Contents

| file | what it holds |
|---|---|
{table}

All learner data here is pseudonymised: `learner_pid` and `uln_block_pid` are keyed
pseudonyms of the ULN, ages replace dates of birth and postcode areas replace postcodes.
No ULN, date of birth or postcode is in this pack. In the CSV files, text a spreadsheet
would run as a formula (starting `=`, `+`, `-`, `@`, a tab or a carriage return) has a
leading apostrophe.

## Checking that nothing changed

`manifest.json` lists every other file with its size and SHA-256. Its own SHA-256 is the
pack's fingerprint, given when the pack was built; keep it apart from the pack. To check:

    accesswatch evidence --verify <this folder or its zip> --expect <fingerprint>

or, without accesswatch, `sha256sum manifest.json` and compare each file's `sha256sum`
with its entry.
"""


FILES = {
    "README.md": "this page",
    "summary.json": "the organisation, score, rank, rules, reasons and accounts on the day",
    "features.csv": "key features: the org's value, its peers' median and its peer z-score",
    "peers.csv": "each key feature across the peer group: quantiles and share of peers below",
    "rule_hits.json": "each rule that fired: definition, value, threshold, evidence counts",
    "timeline.csv": "daily score, rank, rules and volumes",
    "events_lrs.csv": "pseudonymised LRS events of the window; `rules`: rules each lies behind",
    "events_npd.csv": "NPD queries of the window with each agreement check; `rules` likewise",
    "deliveries.csv": "raw delivery files the events came from, with their SHA-256 at ingest",
    "verdicts.json": "analysts' decisions on the organisation (triage history)",
    "versions.json": "code, detector, rule and library versions",
    "manifest.json": "SHA-256 and size of every other file",
}


def build_pack(
    settings: Settings,
    org_id: str,
    day: date,
    out: Path,
    config: DetectionConfig | None = None,
    evidence: EvidenceConfig | None = None,
    now: datetime | None = None,
) -> PackReport:
    """Write the evidence pack of ``org_id`` on ``day`` to the folder ``out`` and
    ``<out>.zip``; return what was written and the pack's fingerprint.

    Raises :class:`NotProfiledError` when ``day`` was not detected, ``KeyError`` for an
    unknown organisation and :class:`PackExistsError` when ``out`` or its zip exists. The
    folder appears complete or not at all (it is built beside and renamed into place).
    """
    cfg = config or load_config()
    ev = evidence or EvidenceConfig()
    out = Path(out)
    zip_path = out.parent / f"{out.name}.zip"
    for target in (out, zip_path):
        if target.exists():
            raise PackExistsError(f"{target} exists: a pack is never overwritten")
    generated_at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    ex = explain(settings, org_id, day, cfg)
    with connect(settings, read_only=True) as con:
        org = _org(con, org_id)
    rules = {r.id: r for r in cfg.rules}
    lrs = lrs_events(settings, org_id, day, ex.rule_hits, cfg, ev.window_days)
    npd = npd_events(settings, org_id, day, ex.rule_hits, cfg, ev.window_days)
    lrs_total, npd_total = lrs.height, npd.height
    lrs, cut_lrs = _keep(lrs, ev.max_events)
    npd, cut_npd = _keep(npd, ev.max_events)
    verdicts, verdict_note = verdict_history(settings, org_id)
    notes: list[str] = []
    if cut_lrs or cut_npd:
        notes.append(
            f"events capped at {ev.max_events} per source (LRS {lrs_total}, NPD {npd_total} "
            "in the window): those behind a rule were kept first, then the latest"
        )
    distribution = peer_distribution(settings, org_id, day)
    timeline = activity_timeline(settings, org_id, day, ev.timeline_days)
    summary = _summary(
        ex,
        org,
        {
            "generated_at": generated_at.isoformat().replace("+00:00", "Z"),
            "code_version": code_version(),
            "window": {
                "events_from": (day - timedelta(days=ev.window_days - 1)).isoformat(),
                "events_to": day.isoformat(),
                "timeline_days": ev.timeline_days,
            },
            "events": {
                "lrs": lrs.height,
                "lrs_in_window": lrs_total,
                "lrs_behind_rules": int((lrs["rules"] != "").sum()),
                "npd": npd.height,
                "npd_in_window": npd_total,
                "npd_behind_rules": int((npd["rules"] != "").sum()),
            },
            "notes": notes,
        },
    )
    features = pl.DataFrame(
        [f.model_dump() for f in ex.features],
        schema={"feature": pl.String, "definition": pl.String, "value": pl.Float64,
                "peer_median": pl.Float64, "peer_z": pl.Float64, "text": pl.String},
    )  # fmt: skip
    hits = [
        {
            **h.model_dump(mode="json"),
            "window_days": _rule_days(rules[h.rule_id]) if h.rule_id in rules else None,
            "events_behind": int(
                (lrs if h.rule_id in rules and rules[h.rule_id].evidence.value != "npd" else npd)[
                    "rules"
                ]
                .str.split(";")
                .list.contains(h.rule_id)
                .sum()
            ),
            "rule": rules[h.rule_id].model_dump(mode="json") if h.rule_id in rules else None,
        }
        for h in ex.rule_hits
    ]
    sources = [*lrs["source_file"].to_list(), *npd["source_file"].to_list()]
    contents: dict[str, bytes] = {
        "summary.json": _json(summary),
        "features.csv": _csv(features),
        "peers.csv": _csv(peer_summary(distribution)),
        "rule_hits.json": _json(hits),
        "timeline.csv": _csv(timeline),
        "events_lrs.csv": _csv(lrs),
        "events_npd.csv": _csv(npd),
        "deliveries.csv": _csv(deliveries(settings, sources)),
        "verdicts.json": _json({"available": True, "note": verdict_note, "decisions": verdicts}),
        "versions.json": _json(versions(settings, cfg)),
    }
    contents = {"README.md": _readme(summary, FILES).encode(), **contents}
    manifest = Manifest(
        org_id=org_id,
        day=day,
        generated_at=generated_at,
        code_version=code_version(),
        files=[
            ManifestEntry(path=name, bytes=len(data), sha256=_sha256_bytes(data))
            for name, data in sorted(contents.items())
        ],
    )
    contents[MANIFEST] = (manifest.model_dump_json(indent=2) + "\n").encode()
    fingerprint = _sha256_bytes(contents[MANIFEST])
    _write(out, zip_path, contents, generated_at)
    return PackReport(
        org_id=org_id,
        day=day,
        folder=out,
        zip_path=zip_path,
        manifest_sha256=fingerprint,
        files=sorted(contents),
        lrs_events=lrs.height,
        npd_events=npd.height,
        events_truncated=cut_lrs or cut_npd,
        verdicts=len(verdicts),
        notes=notes,
    )


def _write(out: Path, zip_path: Path, contents: dict[str, bytes], when: datetime) -> None:
    """The folder, then the zip, each written beside its target and renamed into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        folder = staging / out.name
        folder.mkdir()
        for name, data in contents.items():
            (folder / name).write_bytes(data)
        stamp = when.timetuple()[:6]
        partial = staging / zip_path.name
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name in sorted(contents):
                info = zipfile.ZipInfo(f"{out.name}/{name}", date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, contents[name])
        folder.rename(out)
        partial.rename(zip_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- Verifying a pack ---------------------------------------------------------------------


_CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_S_IFMT, _S_IFLNK, _S_IFREG, _S_IFDIR = 0o170000, 0o120000, 0o100000, 0o040000


def _unsafe_name(name: str) -> str | None:
    """Why a member name (relative, ``/``-separated) could write or read outside its pack
    when extracted, or None when it is safe."""
    if not name:
        return "an empty name"
    if "\x00" in name:
        return "a NUL byte in the name"
    if name.startswith("/"):
        return "an absolute path"
    if _DRIVE.match(name):
        return "a drive letter (an absolute Windows path)"
    if "\\" in name:
        return "a backslash (a Windows path separator)"
    if ".." in name.split("/"):
        return "'..' (climbs out of the pack)"
    return None


def _safe(name: str) -> bool:
    return _unsafe_name(name) is None


class _Member:
    """One file of a pack to hash: where it is and how to open it."""

    def __init__(self, name: str, size: int, opener: Any) -> None:
        self.name, self.size, self.open = name, size, opener


class _TooBig(Exception):
    pass


def _digest(member: _Member, cap: int) -> tuple[int, str]:
    """Size and SHA-256 of ``member``, read in chunks; stops after ``cap`` bytes (the size
    returned is then ``cap + 1``: more than anything allowed, so it shows as changed)."""
    h = hashlib.sha256()
    n = 0
    with member.open() as f:
        while chunk := f.read(min(_CHUNK, cap + 1 - n)):
            n += len(chunk)
            if n > cap:
                raise _TooBig
            h.update(chunk)
    return n, h.hexdigest()


def _folder_members(path: Path, limits: VerifyLimits, problems: list[str]) -> list[_Member]:
    """Every regular file under the pack folder; symlinks and special files are problems
    (never followed or opened: a FIFO would block, a link would read outside the pack)."""
    members: list[_Member] = []
    count = total = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for entry in sorted(dirs) + sorted(files):
            full = Path(root) / entry
            rel = full.relative_to(path).as_posix()
            count += 1
            if count > limits.max_members:
                problems.append(f"more than {limits.max_members:,} entries in {path}")
                return members
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                problems.append(f"{rel!r} is a symbolic link")
            elif stat.S_ISDIR(st.st_mode):
                continue
            elif not stat.S_ISREG(st.st_mode):
                problems.append(f"{rel!r} is not a regular file")
            elif st.st_size > limits.max_member_bytes:
                problems.append(
                    f"{rel!r} is {st.st_size:,} bytes, over the limit of "
                    f"{limits.max_member_bytes:,}"
                )
            else:
                total += st.st_size
                members.append(_Member(rel, st.st_size, lambda p=full: p.open("rb")))
    if total > limits.max_total_bytes:
        problems.append(
            f"the files hold {total:,} bytes in all, over the limit of {limits.max_total_bytes:,}"
        )
    return members


def _zip_members(z: zipfile.ZipFile, limits: VerifyLimits, problems: list[str]) -> list[_Member]:
    """The file members of a pack zip, named relative to the pack (its one top folder
    stripped). Problems: unsafe names, symlinks, duplicates (also differing only in case),
    encrypted or unknown compression, declared sizes over the limits, bomb-like ratios."""
    infos = z.infolist()
    if len(infos) > limits.max_members:
        problems.append(f"{len(infos):,} entries, more than the limit of {limits.max_members:,}")
        return []
    files = [i for i in infos if not i.is_dir()]
    tops = {i.filename.split("/", 1)[0] for i in files}
    strip = len(tops) == 1 and all("/" in i.filename for i in files)
    seen: dict[str, str] = {}
    total = 0
    members: list[_Member] = []
    for info in infos:
        name = info.filename
        why = _unsafe_name(name)
        if why is not None:
            problems.append(f"entry {name!r}: {why}")
            continue
        kind = (info.external_attr >> 16) & _S_IFMT
        if info.create_system == 3 and kind == _S_IFLNK:
            problems.append(f"entry {name!r} is a symbolic link")
            continue
        if info.is_dir():
            continue
        rel = name.split("/", 1)[1] if strip else name
        key = rel.casefold()
        if key in seen:
            same = "the same name" if seen[key] == rel else "names differing only in case"
            problems.append(f"entry {name!r} appears more than once ({same})")
            continue
        seen[key] = rel
        if info.flag_bits & 0x1:
            problems.append(f"entry {name!r} is encrypted")
            continue
        if info.compress_type not in _ZIP_METHODS:
            problems.append(f"entry {name!r} uses unknown compression {info.compress_type}")
            continue
        if info.file_size > limits.max_member_bytes:
            problems.append(
                f"entry {name!r} declares {info.file_size:,} bytes, over the limit of "
                f"{limits.max_member_bytes:,}"
            )
            continue
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _CHUNK and ratio > limits.max_ratio:
            problems.append(
                f"entry {name!r} inflates {ratio:,.0f} times ({info.compress_size:,} to "
                f"{info.file_size:,} bytes), over the limit of {limits.max_ratio:,.0f}: "
                "a zip bomb?"
            )
            continue
        total += info.file_size
        members.append(_Member(rel, info.file_size, lambda i=info: z.open(i)))
    if total > limits.max_total_bytes:
        problems.append(
            f"the entries declare {total:,} bytes in all, over the limit of "
            f"{limits.max_total_bytes:,}"
        )
    return members


_READ_ERRORS = (
    zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, zlib.error
)  # fmt: skip
"""What reading a damaged zip (bad CRC, truncated or corrupt deflate data) or an unreadable
file raises: reported as a problem naming the file, never a traceback."""


def verify_pack(
    path: Path, expected_sha256: str | None = None, limits: VerifyLimits | None = None
) -> Verification:
    """Re-hash a pack (its folder or its zip) against its manifest.

    Reports files missing, changed (size or SHA-256) or not in the manifest, and - when
    ``expected_sha256`` is given - whether the manifest itself is the one issued. Without
    it, a consistent pack whose manifest was rewritten cannot be told apart: keep the
    fingerprint outside the pack.

    The pack is untrusted input. Nothing is extracted: each file is hashed as a stream,
    read no further than its manifest size (plus one byte) and the ``limits``. A pack
    with an entry that would land outside it when extracted (``..``, an absolute path, a
    backslash, a drive letter), a symbolic link, a duplicate entry, too many entries or
    entries larger than the limits (a zip bomb) is refused before anything is hashed:
    ``problems`` names each such entry.
    """
    lim = limits or VerifyLimits()
    path = Path(path)
    expected = expected_sha256.strip().lower() if expected_sha256 else None
    result = Verification(path=path, ok=False, expected_sha256=expected)
    if not path.exists():
        result.problems.append(f"{path} does not exist")
        return result
    z: zipfile.ZipFile | None = None
    try:
        if path.is_dir():
            members = _folder_members(path, lim, result.problems)
        elif not path.is_file():
            result.problems.append(f"{path} is neither a pack folder nor a zip file")
            return result
        elif path.stat().st_size > lim.max_total_bytes:
            result.problems.append(
                f"{path} is {path.stat().st_size:,} bytes, over the limit of "
                f"{lim.max_total_bytes:,}"
            )
            return result
        else:
            z = zipfile.ZipFile(path)
            members = _zip_members(z, lim, result.problems)
        if result.problems:  # refused before reading anything
            return result
        return _check(result, {m.name: m for m in members}, expected, lim)
    except _READ_ERRORS as e:
        result.problems.append(f"cannot read {path}: {e}")
        return result
    finally:
        if z is not None:
            z.close()


def _check(
    result: Verification, files: dict[str, _Member], expected: str | None, lim: VerifyLimits
) -> Verification:

    manifest_member = files.pop(MANIFEST, None)
    if manifest_member is None:
        result.problems.append(f"no {MANIFEST} in {result.path}")
        return result
    if manifest_member.size > lim.max_manifest_bytes:
        result.problems.append(
            f"{MANIFEST} is {manifest_member.size:,} bytes, over the limit of "
            f"{lim.max_manifest_bytes:,}"
        )
        return result
    with manifest_member.open() as f:
        raw = f.read(lim.max_manifest_bytes + 1)
    if len(raw) > lim.max_manifest_bytes:
        result.problems.append(f"{MANIFEST} is over the limit of {lim.max_manifest_bytes:,}")
        return result
    result.manifest_sha256 = _sha256_bytes(raw)
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValueError as e:
        result.problems.append(f"{MANIFEST} is not a valid manifest: {e}")
        return result
    listed = set()
    for entry in manifest.files:
        if entry.path in listed:
            result.problems.append(f"manifest lists {entry.path!r} more than once")
            continue
        listed.add(entry.path)
        if not _safe(entry.path) or entry.path == MANIFEST:
            result.problems.append(f"manifest lists an invalid path {entry.path!r}")
            continue
        member = files.get(entry.path)
        if member is None:
            result.missing.append(entry.path)
            continue
        if member.size != entry.bytes:
            result.changed.append(entry.path)
            continue
        try:  # never past the size the manifest states (checked against the limits)
            size, digest = _digest(member, entry.bytes)
        except _TooBig:
            result.changed.append(entry.path)
            continue
        except _READ_ERRORS as e:
            result.problems.append(f"cannot read {entry.path!r}: {e}")
            continue
        if size != entry.bytes or digest != entry.sha256:
            result.changed.append(entry.path)
        else:
            result.checked += 1
    result.unexpected = sorted(set(files) - listed)
    if expected is not None and expected != result.manifest_sha256:
        result.problems.append(
            f"the manifest's SHA-256 is {result.manifest_sha256}, not the expected {expected}"
        )
    result.ok = not (result.missing or result.changed or result.unexpected or result.problems)
    return result

"""One organisation's story: :func:`explain` assembles, for one org and day, its feature
values against peers, its 28-day score timeline, rule hits with evidence, reasons, accounts,
the legitimate explanations that hold for it and the analysts' verdicts on it.
:func:`explain_many` does it for several orgs at once (the report's cards), one query each
for their features, timelines, rule hits and list rows; :func:`explain` is its one-org case."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import duckdb
import polars as pl

from detectors.explanations import describe, holding
from detectors.rules import load_config
from pipeline.profile.store import table_columns
from pipeline.rank.listing import (
    NotProfiledError,
    has_results,
    org_directory,
    resolve_decisions,
    suspect_from_row,
    verdict_behaviour,
)
from pipeline.rank.reasons import finite, formatter, peer_text
from pipeline.store.warehouse import connect
from pipeline.triage.verdicts import (
    decisions_in_force,
    history,
    last_review,
    standing,
    untriaged_status,
)
from schemas.detection import (
    TIMELINE_DAYS,
    DetectionConfig,
    Evidence,
    FeatureComparison,
    Level,
    OrgExplanation,
    RuleHit,
    TimelinePoint,
    TriageStatus,
)
from schemas.features import (
    FEATURES,
)
from schemas.settings import Settings


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
    verdicts are applied. The one-org case of :func:`explain_many`.
    """
    return explain_many(settings, [org_id], day, config)[0]


def explain_many(
    settings: Settings,
    org_ids: Sequence[str],
    day: date,
    config: DetectionConfig | None = None,
) -> list[OrgExplanation]:
    """:func:`explain` of each of ``org_ids`` (in that order) on ``day``, read on one
    connection with one query each for the orgs' features, score timelines, rule hits and
    stored list rows, whatever their number (the report's cards).

    Raises :class:`NotProfiledError` when ``detect`` has not run for ``day`` and
    ``KeyError`` naming the first org id no register row or event names.
    """
    cfg = config or load_config()
    wanted = list(dict.fromkeys(org_ids))
    if not wanted:
        return []
    decisions = history(settings)
    with connect(settings, read_only=True) as con:
        if not has_results(con, day):
            raise NotProfiledError(f"no detection results for {day}: run detect first")
        found = org_directory(con, wanted)
        for org_id in wanted:
            if org_id not in found:
                raise KeyError(f"unknown organisation {org_id!r}")
        feats = _features_of(con, day, wanted)
        rows = {r["org_id"]: r for r in feats.iter_rows(named=True)} if feats.height else {}
        timelines: dict[str, list[TimelinePoint]] = defaultdict(list)
        for o, d, s, k in con.execute(
            "SELECT s.org_id, s.day, s.score, x.rank FROM scores AS s "
            "LEFT JOIN suspects AS x ON x.day = s.day AND x.level = 'org' "
            "AND x.org_id = s.org_id WHERE s.level = 'org' "
            "AND s.org_id IN (SELECT unnest($o)) AND s.day BETWEEN $lo AND $d "
            "ORDER BY s.org_id, s.day",
            {"o": wanted, "lo": day - timedelta(days=TIMELINE_DAYS - 1), "d": day},
        ).fetchall():
            timelines[o].append(TimelinePoint(day=d, score=float(s), rank=k))
        rule_desc = {r.id: r.description for r in cfg.rules}
        hits: dict[str, list[RuleHit]] = defaultdict(list)
        for o, rid, sev, user, feat, val, thr, hard, msg, ev in con.execute(
            "SELECT org_id, rule_id, severity, user_name, feature, value, threshold, "
            "hard_fact, message, evidence FROM rule_hits "
            "WHERE day = $d AND org_id IN (SELECT unnest($o)) "
            "ORDER BY org_id, rule_id, user_name",
            {"d": day, "o": wanted},
        ).fetchall():
            hits[o].append(
                RuleHit(
                    rule_id=rid,
                    severity=sev,
                    org_id=o,
                    user_name=user,
                    description=rule_desc.get(rid, rid),
                    feature=feat,
                    value=val,
                    threshold=thr,
                    hard_fact=hard,
                    message=msg,
                    evidence=Evidence.model_validate_json(ev),
                )
            )
        cur = con.execute(
            "SELECT * FROM suspects WHERE day = $d AND level = 'org' "
            "AND org_id IN (SELECT unnest($o))",
            {"d": day, "o": wanted},
        )
        names = [d[0] for d in cur.description or []]
        listed = {
            r["org_id"]: r for r in (dict(zip(names, x, strict=True)) for x in cur.fetchall())
        }
        resolved = resolve_decisions(con, settings, decisions)
        in_force = {o: d for o, d in decisions_in_force(resolved, day).items() if o in found}
        behaviour = verdict_behaviour(con, day, in_force)
    held = holding(feats, cfg.explanations)
    reviewed = last_review(resolved, day)
    out = {}
    for org_id in wanted:
        row = rows.get(org_id, {})
        current = listed.get(org_id)
        timeline = timelines.get(org_id, [])
        stand = standing(in_force.get(org_id), behaviour.get(org_id, []), day, cfg.triage)
        status: TriageStatus | None = stand.status if stand else None
        if stand is None and current is not None:
            status = untriaged_status(current["first_flagged"], reviewed, day)
        listed_as = suspect_from_row(current, "org") if current else None
        out[org_id] = OrgExplanation(
            org_id=org_id,
            org_name=found[org_id][0],
            org_type=found[org_id][1],
            day=day,
            peer_group=str(row.get("peer_group") or ""),
            score=float(next((p.score for p in timeline if p.day == day), 0.0)),
            rank=current["rank"] if current else None,
            reasons=listed_as.reasons if listed_as else [],
            features=_comparisons(row),
            timeline=timeline,
            rule_hits=hits.get(org_id, []),
            explanations=[
                describe(e, row, formatter(Level.org))
                for e in cfg.explanations
                if e.id in held.get(org_id, [])
            ],
            accounts=listed_as.accounts if listed_as else [],
            triage_status=status,
            triage_detail=stand.detail if stand else None,
            verdicts=[d for d in decisions if d.org_id == org_id],
        )
    return [out[o] for o in org_ids]


def _features_of(con: duckdb.DuckDBPyConnection, day: date, org_ids: list[str]) -> pl.DataFrame:
    """The stored org-level feature rows of ``org_ids`` on ``day`` (one query)."""
    if table_columns(con, "features") is None:
        return pl.DataFrame(schema={"org_id": pl.String})
    return con.sql(
        "SELECT * FROM features WHERE day = $d AND org_id IN (SELECT unnest($o))",
        params={"d": day, "o": org_ids},
    ).pl()


def _comparisons(row: dict[str, Any]) -> list[FeatureComparison]:
    """The key features of one org's feature row against its peers, largest |peer z| first."""
    comparisons = []
    for f in FEATURES.values():
        if not f.key:
            continue
        text, pm = peer_text(f, row, Level.org)
        comparisons.append(
            FeatureComparison(
                feature=f.name,
                definition=f.definition,
                value=finite(row.get(f.name)),
                peer_median=pm,
                peer_z=finite(row.get(f"{f.name}_pz")),
                text=text,
            )
        )
    comparisons.sort(key=lambda c: -abs(c.peer_z or 0.0))
    return comparisons

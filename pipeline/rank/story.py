"""One organisation's story: :func:`explain` assembles, for one org and day, its feature
values against peers, its 28-day score timeline, rule hits with evidence, reasons, accounts,
the legitimate explanations that hold for it and the analysts' verdicts on it."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from detectors.explanations import describe, holding
from detectors.rules import load_config
from pipeline.profile.store import read_features
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
    verdicts are applied.
    """
    cfg = config or load_config()
    decisions = history(settings)
    with connect(settings, read_only=True) as con:
        if not has_results(con, day):
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
        resolved = resolve_decisions(con, settings, decisions)
        in_force = {o: d for o, d in decisions_in_force(resolved, day).items() if o == org_id}
        behaviour = verdict_behaviour(con, day, in_force)
    comparisons = []
    for f in FEATURES.values():
        if not f.key:
            continue
        value = finite(row.get(f.name))
        text, pm = peer_text(f, row, Level.org)
        comparisons.append(
            FeatureComparison(
                feature=f.name,
                definition=f.definition,
                value=value,
                peer_median=pm,
                peer_z=finite(row.get(f"{f.name}_pz")),
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
        reasons=suspect_from_row(current, "org").reasons if current else [],
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
            describe(e, row, formatter(Level.org)) for e in cfg.explanations if e.id in held
        ],
        accounts=suspect_from_row(current, "org").accounts if current else [],
        triage_status=status,
        triage_detail=stand.detail if stand else None,
        verdicts=[d for d in decisions if d.org_id == org_id],
    )

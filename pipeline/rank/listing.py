"""Reading the stored ranked list and applying the analysts' verdicts to it.

:func:`suspects` reads the list ``detect`` stored for a day and applies the recorded triage
decisions at read time (rules in :mod:`pipeline.triage.verdicts`). :func:`org_directory`
names organisations (register and unregistered callers); :func:`first_flagged` is the first
day an org (account) ranked within ``flag_top``. Raises :class:`NotProfiledError` for a day
without detection results.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from detectors.rules import load_config
from pipeline.rank.learned import Learned, adjust, learn
from pipeline.store.warehouse import connect
from pipeline.triage.verdicts import (
    DayBehaviour,
    apply_triage,
    baseline,
    decisions_in_force,
    history,
)
from schemas.detection import (
    LIST_TOP,
    AccountShare,
    DetectionConfig,
    Reason,
    Suspect,
    TriageStatus,
)
from schemas.settings import Settings
from schemas.triage import TriageDecision, Verdict


class NotProfiledError(LookupError):
    """The day has no features (run ``build_profiles`` first) or no detection results."""


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


def first_flagged(
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


def has_results(con: duckdb.DuckDBPyConnection, day: date) -> bool:
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
    decisions: Sequence[TriageDecision] | None = None,
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

    With ``learning.enabled``, the ``misuse`` and ``legitimate`` verdicts in force also
    teach the ranking (:mod:`pipeline.rank.learned`): each org row moves by its resemblance
    to other judged orgs (never by its own verdict; a hard fact is never lowered), the list
    is re-ranked by the adjusted score, a moved row says whom it resembles, and every row
    carries the ``model_version``. An org off the stored list that learning lifts above its
    last row is listed too. Without such verdicts the list is exactly the unsupervised one.
    ``decisions`` replaces the home's recorded decisions (a what-if, as the simulated
    analyst of :mod:`evaluation.analyst` uses; nothing is written).

    Raises :class:`NotProfiledError` when ``detect`` has not run for ``day`` and
    :class:`pipeline.triage.verdicts.TriageFileError` for a decision file that is not valid.
    """
    if by not in ("org", "account"):
        raise ValueError(f"by must be 'org' or 'account', got {by!r}")
    cfg = config or load_config()
    recorded = history(settings) if decisions is None else list(decisions)
    with connect(settings, read_only=True) as con:
        if not has_results(con, day):
            raise NotProfiledError(f"no detection results for {day}: run detect first")
        cur = con.execute(
            "SELECT * FROM suspects WHERE day = $d AND level = $l ORDER BY rank",
            {"d": day, "l": by},
        )
        names = [d[0] for d in cur.description or []]
        rows = [suspect_from_row(dict(zip(names, r, strict=True)), by) for r in cur.fetchall()]
        recorded = resolve_decisions(con, settings, recorded)
        in_force = decisions_in_force(recorded, day)
        behaviour = verdict_behaviour(con, day, in_force)
        present = {r.org_id for r in rows}
        extra = _pinned_rows(con, cfg, day, in_force, present) if by == "org" else []
        if by == "org" and cfg.learning.enabled:
            learned = learn(con, cfg, day, in_force, behaviour)
            rows = adjust([*rows, *_raised_rows(con, cfg, day, learned, rows)], learned)
    return apply_triage(
        rows,
        recorded,
        behaviour,
        day,
        cfg.triage,
        top,
        include_suppressed=include_suppressed,
        pinned_extra=extra,
    )


def resolve_decisions(
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


def verdict_behaviour(
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
    wanted = {
        o: d.day or day
        for o, d in sorted(in_force.items())
        if d.verdict is Verdict.misuse and o not in present
    }
    return _unlisted_rows(con, cfg, day, wanted, "misuse")


def _raised_rows(
    con: duckdb.DuckDBPyConnection,
    cfg: DetectionConfig,
    day: date,
    learned: Learned,
    rows: Sequence[Suspect],
) -> list[Suspect]:
    """Rows for orgs missing from the stored list of ``day`` that the learned points lift
    above its last row (any lifted org when the list is not full)."""
    present = {r.org_id for r in rows}
    full = len(rows) >= cfg.ranking.store_top
    floor = min((r.score for r in rows), default=0.0) if full else float("-inf")
    wanted = {
        o: day
        for o, p in sorted(learned.points.items())
        if p > 0 and o not in present and learned.scores[o] + p > floor
    }
    return _unlisted_rows(con, cfg, day, wanted, "new")


def _unlisted_rows(
    con: duckdb.DuckDBPyConnection,
    cfg: DetectionConfig,
    day: date,
    wanted: dict[str, date],
    status: TriageStatus,
) -> list[Suspect]:
    """Rows for orgs missing from the stored list of ``day``: score and rules of the day,
    no reasons or accounts; ``wanted`` gives each org's first-flagged day when it never
    ranked within ``flag_top``."""
    if not wanted:
        return []
    orgs = {o: (n, t) for o, (n, t, _) in org_directory(con, list(wanted)).items()}
    flagged = first_flagged(con, cfg, day, "org")
    out = []
    for org, first in wanted.items():
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
                first_flagged=flagged.get((org, ""), first),
                triage_status=status,
            )
        )
    return out


def suspect_from_row(r: dict[str, Any], by: str) -> Suspect:
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

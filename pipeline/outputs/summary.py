"""What happened on one day, from the warehouse: deliveries in, quarantine, suspects, rules.

Used by the nightly artifacts, the backfill summary table and (later) the HTML report.
"""

from __future__ import annotations

import json
from datetime import date

from pipeline.store.warehouse import connect
from schemas.detection import REPORT_TOP
from schemas.flows import DaySummary
from schemas.settings import Settings


def day_summary(settings: Settings, day: date, top: int = REPORT_TOP) -> DaySummary:
    """Counts for deliveries of ``day`` and its ranked list (org level, top ``top``)."""
    out = DaySummary(day=day)
    with connect(settings, read_only=True) as con:
        ledger = con.execute(
            # A refused file that a later run committed (after a fix) is no longer refused.
            "SELECT status, rows_written, duplicates, quarantined, late_events, reason, "
            "source_file, quarantine_reasons FROM ingest_ledger l "
            "WHERE delivery_day = $d AND source IN ('lrs', 'npd') AND NOT ("
            "  status = 'refused' AND EXISTS (SELECT 1 FROM ingest_ledger c "
            "    WHERE c.source_file = l.source_file AND c.status = 'committed' "
            "    AND c.started_at >= l.started_at))",
            {"d": day},
        ).fetchall()
        for status, written, dups, quarantined, late, reason, file, reasons in ledger:
            if status == "refused":
                out.refused.append(f"{file}: {reason}")
                continue
            out.events_in += written
            out.duplicates += dups
            out.quarantined += quarantined
            out.late_events += late
            for why, n in json.loads(reasons or "{}").items():
                out.quarantine_reasons[why] = out.quarantine_reasons.get(why, 0) + n
        ranked = con.execute(
            "SELECT org_id, score, triage_status FROM suspects "
            "WHERE day = $d AND level = 'org' ORDER BY rank LIMIT $k",
            {"d": day, "k": top},
        ).fetchall()
        fired = con.execute(
            "SELECT rule_id, count(DISTINCT org_id) FROM rule_hits "
            "WHERE day = $d GROUP BY rule_id ORDER BY 2 DESC, 1",
            {"d": day},
        ).fetchall()
    out.suspects = len(ranked)
    out.new_suspects = [org for org, _s, status in ranked if status == "new"]
    out.rules_fired = {rule: int(n) for rule, n in fired}
    if ranked:
        out.top_org, out.top_score = ranked[0][0], float(ranked[0][1])
    return out

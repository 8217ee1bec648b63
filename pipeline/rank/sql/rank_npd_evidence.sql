-- Example NPD queries behind rule hits: for each org in the temp table `wanted_npd`
-- (org_id, kind), its latest $examples queries in the window [$lo, $day] of that kind:
-- `npd` the queries that breach the agreement they claim (npd_breach of npd_checks.sql),
-- `caller` any query (no learner-level data: NPD events carry none). Reads the temp table
-- `evidence_npd` (the NPD lake partitions of the window) and `agreements`.
SELECT org_id, kind, event_id, occurred_at, user_name, operation, learner_pid
FROM (
    SELECT
        e.org_id,
        w.kind,
        e.event_id,
        e.occurred_at,
        e.user_name,
        e.channel || ':' || e.dataset AS operation,
        NULL::VARCHAR AS learner_pid,
        row_number() OVER (
            PARTITION BY e.org_id, w.kind ORDER BY e.occurred_at DESC, e.event_id
        ) AS rn
    FROM evidence_npd AS e
    JOIN wanted_npd AS w ON w.org_id = e.org_id
    LEFT JOIN agreements AS a ON a.agreement_ref = e.agreement_ref AND a.org_id = e.org_id
    WHERE w.kind = 'caller' OR coalesce(npd_breach(npd_checks(e, a, e.occurred_at::DATE)), false)
)
WHERE rn <= $examples
ORDER BY org_id, kind, occurred_at DESC;

-- Example NPD queries behind NPD rule hits: for each org in the temp table `wanted_npd`
-- (org_id), its latest $examples queries in the window [$lo, $day] that breach the
-- agreement they claim (no learner-level data: NPD events carry none). Reads the temp
-- table `evidence_npd` (the NPD lake partitions of the window) and `agreements`.
SELECT org_id, event_id, occurred_at, user_name, operation, learner_pid
FROM (
    SELECT
        e.org_id,
        e.event_id,
        e.occurred_at,
        e.user_name,
        e.channel || ':' || e.dataset AS operation,
        NULL::VARCHAR AS learner_pid,
        row_number() OVER (PARTITION BY e.org_id ORDER BY e.occurred_at DESC, e.event_id) AS rn
    FROM evidence_npd AS e
    SEMI JOIN wanted_npd AS w ON w.org_id = e.org_id
    LEFT JOIN agreements AS a ON a.agreement_ref = e.agreement_ref AND a.org_id = e.org_id
    WHERE a.agreement_ref IS NULL
        OR e.occurred_at::DATE < a.valid_from OR e.occurred_at::DATE > a.valid_to
        OR NOT list_contains(list_transform(string_split(a.datasets, ';'), lambda x: trim(x)),
                             e.dataset)
        OR e.year_from < a.year_from OR e.year_to > a.year_to
        OR e.min_identifiability < a.min_identifiability
        OR e.max_sensitivity < a.max_sensitivity
        OR e.rows_returned > a.max_rows
)
WHERE rn <= $examples
ORDER BY org_id, occurred_at DESC;

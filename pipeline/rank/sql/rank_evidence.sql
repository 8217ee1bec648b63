-- Example events behind rule hits: for each (org, account) pair in the temp table `wanted`
-- (org_id, ukprn, user_name ('' = any account), kind), the first $examples LRS events of the
-- window [$lo, $day] matching the evidence kind. Pseudonymised columns only. Reads the temp
-- table `evidence_lrs` (the lake partitions of the window, filtered to the wanted UKPRNs).
-- Needs the macros of lrs_operations.sql (pipeline.profile.define_macros).
SELECT org_id, user_key, kind, event_id, occurred_at, user_name, operation, learner_pid
FROM (
    SELECT
        w.org_id,
        w.user_name AS user_key,
        w.kind,
        e.event_id,
        e.occurred_at,
        e.user_name,
        e.operation,
        e.learner_pid,
        row_number() OVER (
            PARTITION BY w.org_id, w.user_name, w.kind ORDER BY e.occurred_at DESC, e.event_id
        ) AS rn
    FROM wanted AS w
    JOIN evidence_lrs AS e ON e.ukprn = w.ukprn AND (w.user_name = '' OR e.user_name = w.user_name)
    WHERE CASE w.kind
        WHEN 'search' THEN lrs_is_search(e.operation)
        WHEN 'uln_lookup' THEN lrs_is_uln_lookup(e.operation)
        WHEN 'invalid_uln' THEN NOT coalesce(e.uln_valid, true)
        WHEN 'plr' THEN lrs_is_record_read(e.operation)
        WHEN 'out_of_hours' THEN hour(timezone($tz, e.occurred_at)) NOT BETWEEN $office_start AND $office_end - 1
            OR isodow(timezone($tz, e.occurred_at)) >= 6
        WHEN 'script_agent' THEN coalesce(regexp_matches(e.user_agent, $script_pattern), false)
        ELSE true
    END
)
WHERE rn <= $examples
ORDER BY org_id, user_key, kind, occurred_at DESC;

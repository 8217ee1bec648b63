-- The NPD queries of one organisation ($org_id) in the lake files $files (the pack's
-- window), each with the agreement checks of npd_checks.sql as its own column (the checks
-- profile_npd_day.sql counts per day; the day is the query's Europe/London day, the lake
-- partition). NPD events carry no learner-level data.
WITH events AS (
    SELECT * FROM read_parquet($files, hive_partitioning = true, union_by_name = true)
    WHERE org_id = $org_id
)
SELECT
    CAST(e.event_date AS DATE) AS event_date,
    e.occurred_at,
    e.event_id,
    e.org_id,
    e.user_name,
    e.agreement_ref,
    e.channel,
    e.dataset,
    e.items,
    e.min_identifiability,
    e.max_sensitivity,
    e.year_from,
    e.year_to,
    e.rows_returned,
    unnest(npd_checks(e, a, CAST(e.event_date AS DATE))),
    e.delivery_day,
    e.source_file,
    e.source_line
FROM events AS e
LEFT JOIN agreements AS a ON a.agreement_ref = e.agreement_ref AND a.org_id = e.org_id
ORDER BY e.occurred_at, e.event_id;

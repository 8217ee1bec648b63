-- Days on which each organisation made at least one LRS call, by the org id detection
-- uses (an unregistered caller is 'UKPRN-' || its UKPRN, as in profile_day_events.sql).
SELECT DISTINCT coalesce(o.org_id, 'UKPRN-' || e.ukprn) AS org_id, e.event_date AS day
FROM read_parquet($files, hive_partitioning = true) AS e
LEFT JOIN organisations AS o ON o.ukprn = e.ukprn
WHERE e.event_date BETWEEN $first AND $last

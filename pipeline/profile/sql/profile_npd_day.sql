-- Per org and day: NPD queries and how many of them fall outside the agreement they claim
-- (each check of npd_checks.sql counted, and npd_breaches: the queries that fail any).
-- Reads the NPD lake files $npd_files of the day's partition, so every query's day is $day.
CREATE OR REPLACE TEMP TABLE new_npd_day AS
WITH checked AS (
    SELECT
        e.org_id,
        e.rows_returned,
        e.min_identifiability <= $identifying_level AS identifying,
        npd_checks(e, a, $day) AS c
    FROM read_parquet($npd_files, hive_partitioning = false) AS e
    LEFT JOIN agreements AS a ON a.agreement_ref = e.agreement_ref AND a.org_id = e.org_id
)
SELECT
    $day::DATE AS day,
    org_id,
    count(*) AS npd_queries,
    sum(rows_returned) AS npd_rows,
    count(*) FILTER (WHERE identifying) AS npd_identifying,
    count(*) FILTER (WHERE c.no_agreement) AS npd_no_agreement,
    count(*) FILTER (WHERE c.outside_validity) AS npd_outside_validity,
    count(*) FILTER (WHERE c.outside_datasets) AS npd_outside_datasets,
    count(*) FILTER (WHERE c.outside_years) AS npd_outside_years,
    count(*) FILTER (WHERE c.beyond_identifiability) AS npd_beyond_identifiability,
    count(*) FILTER (WHERE c.beyond_sensitivity) AS npd_beyond_sensitivity,
    count(*) FILTER (WHERE c.above_max_rows) AS npd_above_max_rows,
    count(*) FILTER (WHERE npd_breach(c)) AS npd_breaches
FROM checked
GROUP BY org_id;

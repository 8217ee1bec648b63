-- LRS calls made from $date_from to $date_to (Europe/London days), one row per event_id,
-- counted by the caller's organisation type (from the register; 'not in the register' for
-- a UKPRN it does not hold), channel and operation kind. Needs the lrs_is_* macros.
WITH events AS (
    SELECT event_id, any_value(ukprn) AS ukprn, any_value(channel) AS channel,
           any_value(operation) AS operation
    FROM read_parquet($files, hive_partitioning = true, union_by_name = true)
    WHERE CAST(event_date AS DATE) BETWEEN $date_from AND $date_to
    GROUP BY event_id
)
SELECT
    coalesce(o.org_type, 'not in the register') AS org_type,
    e.channel,
    CASE
        WHEN lrs_is_demographic(e.operation) THEN 'search by name and date of birth'
        WHEN lrs_is_verify(e.operation) THEN 'verify a learner'
        WHEN lrs_is_uln_lookup(e.operation) THEN 'look up by ULN'
        WHEN lrs_is_record_read(e.operation) THEN 'read a learning record'
        WHEN lrs_is_register(e.operation) THEN 'register or update'
        WHEN lrs_is_batch(e.operation) THEN 'batch file'
        ELSE 'other'
    END AS operation_kind,
    count(*) AS n
FROM events AS e
LEFT JOIN (SELECT ukprn, any_value(org_type) AS org_type FROM organisations
           WHERE ukprn IS NOT NULL GROUP BY ukprn) AS o USING (ukprn)
GROUP BY ALL;

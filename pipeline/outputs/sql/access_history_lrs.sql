-- Every LRS call that named one learner (pseudonym $pid) between $date_from and $date_to
-- (Europe/London days: the lake partition), one row per event_id, oldest first. Only the
-- columns a learner is told of are read: no other learner's pseudonym, age or area, and
-- no account name, address or user agent. Needs the lrs_is_* macros (lrs_operations.sql).
SELECT
    e.event_id,
    e.occurred_at,
    e.ukprn,
    e.channel,
    e.operation,
    e.response_code,
    CASE
        WHEN lrs_is_demographic(e.operation) THEN 'searched for you by name and date of birth'
        WHEN lrs_is_verify(e.operation) THEN 'checked that your name and date of birth match your record'
        WHEN lrs_is_uln_lookup(e.operation) THEN 'looked you up by your learner number'
        WHEN lrs_is_record_read(e.operation) THEN 'read your learning record'
        WHEN e.operation IN ('registerSingleLearner', 'submitBatchRegistration')
            THEN 'registered you'
        WHEN lrs_is_register(e.operation) THEN 'updated your details'
        WHEN lrs_is_batch(e.operation) THEN 'included you in a batch file'
        ELSE 'used your learner number (' || e.operation || ')'
    END AS plain_operation
FROM (
    SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY delivery_day) AS copy
    FROM read_parquet($files, hive_partitioning = true, union_by_name = true)
    WHERE learner_pid = $pid
      AND CAST(event_date AS DATE) BETWEEN $date_from AND $date_to
) AS e
WHERE e.copy = 1
ORDER BY e.occurred_at, e.event_id;

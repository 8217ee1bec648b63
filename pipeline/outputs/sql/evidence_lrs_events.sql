-- The LRS events of one organisation (UKPRN $ukprn) in the lake files $files (the pack's
-- window), as the temp table `evidence_lrs`: pseudonymised columns only, named one by one so
-- that a column added to the lake later never reaches a pack unreviewed. `event_date` is the
-- lake partition (the Europe/London day); delivery file and line trace each event back to
-- the raw delivery (see `deliveries.csv` of the pack). Also the input of rank_evidence.sql.
CREATE OR REPLACE TEMP TABLE evidence_lrs AS
SELECT
    CAST(event_date AS DATE) AS event_date,
    occurred_at,
    event_id,
    ukprn,
    user_name,
    channel,
    operation,
    learner_pid,
    uln_block_pid,
    uln_valid,
    learner_age,
    postcode_area,
    response_code,
    result_count,
    batch_size,
    client_ip,
    user_agent,
    delivery_day,
    source_file,
    source_line
FROM read_parquet($files, hive_partitioning = true, union_by_name = true)
WHERE ukprn = $ukprn;

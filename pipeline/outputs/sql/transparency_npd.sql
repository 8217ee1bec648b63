-- NPD queries from $date_from to $date_to, one row per event_id, by the purpose of the
-- agreement they cite (the word before ':' of its purpose, such as 'home_office_match';
-- 'approved project' for a project's title) and channel.
WITH events AS (
    SELECT event_id, any_value(agreement_ref) AS agreement_ref, any_value(channel) AS channel
    FROM read_parquet($files, hive_partitioning = true, union_by_name = true)
    WHERE CAST(event_date AS DATE) BETWEEN $date_from AND $date_to
    GROUP BY event_id
)
SELECT
    CASE
        WHEN e.agreement_ref IS NULL OR e.agreement_ref = '' THEN 'no agreement cited'
        WHEN a.agreement_ref IS NULL THEN 'agreement not on file'
        WHEN regexp_matches(a.purpose, '^[a-z_]+:')
            THEN replace(regexp_extract(a.purpose, '^([a-z_]+):', 1), '_', ' ')
        ELSE 'approved project'
    END AS purpose,
    e.channel,
    count(*) AS n
FROM events AS e
LEFT JOIN (SELECT agreement_ref, any_value(purpose) AS purpose FROM agreements
           GROUP BY agreement_ref) AS a USING (agreement_ref)
GROUP BY ALL;

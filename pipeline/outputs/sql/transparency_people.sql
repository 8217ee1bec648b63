-- People looked up from $date_from to $date_to: distinct learners (valid ULNs only), each
-- counted once, by their age and postcode area at their first lookup in the period.
-- `transparency_regions` (postcode_area, region) is registered by the caller.
WITH firsts AS (
    SELECT learner_pid, learner_age AS age, postcode_area AS area
    FROM read_parquet($files, hive_partitioning = true, union_by_name = true)
    WHERE CAST(event_date AS DATE) BETWEEN $date_from AND $date_to
      AND learner_pid IS NOT NULL AND uln_valid
    -- the first lookup's own age and area, empty ones included (arg_min would skip them)
    QUALIFY row_number() OVER (PARTITION BY learner_pid ORDER BY occurred_at, event_id) = 1
)
SELECT
    CASE
        WHEN age IS NULL THEN 'not known'
        WHEN age < 16 THEN 'under 16'
        WHEN age < 19 THEN '16 to 18'
        WHEN age < 25 THEN '19 to 24'
        WHEN age < 50 THEN '25 to 49'
        ELSE '50 and over'
    END AS age_band,
    coalesce(r.region, 'not known') AS region,
    count(*) AS n
FROM firsts AS f
LEFT JOIN transparency_regions AS r ON r.postcode_area = f.area
GROUP BY ALL;

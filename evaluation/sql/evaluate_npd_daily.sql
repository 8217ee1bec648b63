-- Baseline input: raw NPD volume per organisation and day (queries, users).
SELECT org_id, event_date AS day, count(*) AS calls, 0 AS learners,
       count(DISTINCT user_name) AS users
FROM read_parquet($files, hive_partitioning = true)
WHERE event_date BETWEEN $first AND $last
GROUP BY ALL

-- Baseline input: raw LRS volume per organisation and day (calls, learners, users).
SELECT o.org_id, e.event_date AS day, count(*) AS calls,
       count(DISTINCT e.learner_pid) AS learners, count(DISTINCT e.user_name) AS users
FROM read_parquet($files, hive_partitioning = true) AS e
JOIN organisations AS o ON o.ukprn = e.ukprn
WHERE e.event_date BETWEEN $first AND $last
GROUP BY ALL

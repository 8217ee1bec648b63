-- Days on which each organisation made at least one NPD query.
SELECT DISTINCT org_id, event_date AS day
FROM read_parquet($files, hive_partitioning = true)
WHERE event_date BETWEEN $first AND $last

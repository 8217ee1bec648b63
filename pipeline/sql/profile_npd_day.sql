-- Per org and day: NPD queries and how many of them fall outside the agreement they claim
-- (checked against `agreements`: the reference must exist and belong to the org; the day
-- must be inside its validity; dataset, years, identifiability, sensitivity and rows must
-- be within its limits). Sensitivity A is the most sensitive, identifiability 1 the most
-- identifying. Reads the NPD lake files $npd_files of the day's partition.
CREATE OR REPLACE TEMP TABLE new_npd_day AS
WITH checked AS (
    SELECT
        e.org_id,
        e.rows_returned,
        e.min_identifiability <= $identifying_level AS identifying,
        a.agreement_ref IS NULL AS no_agreement,
        a.agreement_ref IS NOT NULL AND ($day < a.valid_from OR $day > a.valid_to)
            AS outside_validity,
        a.agreement_ref IS NOT NULL
            AND NOT list_contains(list_transform(string_split(a.datasets, ';'), lambda x: trim(x)),
                                  e.dataset) AS outside_datasets,
        a.agreement_ref IS NOT NULL AND (e.year_from < a.year_from OR e.year_to > a.year_to)
            AS outside_years,
        a.agreement_ref IS NOT NULL AND e.min_identifiability < a.min_identifiability
            AS beyond_identifiability,
        a.agreement_ref IS NOT NULL AND e.max_sensitivity < a.max_sensitivity
            AS beyond_sensitivity,
        a.agreement_ref IS NOT NULL AND e.rows_returned > a.max_rows AS above_max_rows
    FROM read_parquet($npd_files, hive_partitioning = false) AS e
    LEFT JOIN agreements AS a ON a.agreement_ref = e.agreement_ref AND a.org_id = e.org_id
)
SELECT
    $day::DATE AS day,
    org_id,
    count(*) AS npd_queries,
    sum(rows_returned) AS npd_rows,
    count(*) FILTER (WHERE identifying) AS npd_identifying,
    count(*) FILTER (WHERE no_agreement) AS npd_no_agreement,
    count(*) FILTER (WHERE outside_validity) AS npd_outside_validity,
    count(*) FILTER (WHERE outside_datasets) AS npd_outside_datasets,
    count(*) FILTER (WHERE outside_years) AS npd_outside_years,
    count(*) FILTER (WHERE beyond_identifiability) AS npd_beyond_identifiability,
    count(*) FILTER (WHERE beyond_sensitivity) AS npd_beyond_sensitivity,
    count(*) FILTER (WHERE above_max_rows) AS npd_above_max_rows,
    count(*) FILTER (
        WHERE no_agreement OR outside_validity OR outside_datasets OR outside_years
            OR beyond_identifiability OR beyond_sensitivity OR above_max_rows
    ) AS npd_breaches
FROM checked
GROUP BY org_id;

-- A fingerprint of the reference data the daily summaries depend on (which UKPRN is which
-- org, its region and status, and every NPD agreement): summaries are rebuilt when it changes.
SELECT md5(
    coalesce((
        SELECT string_agg(
            -- every field written, NULL as '' (concat_ws would skip it: "a||b" and "a|b|"
            -- must differ now that optional fields may be empty)
            concat_ws('|', org_id, coalesce(ukprn, ''), coalesce(region, ''), status,
                coalesce(status_changed_on::VARCHAR, '')), ','
            ORDER BY org_id
        )
        FROM organisations
    ), '')
    || '#'
    || coalesce((
        SELECT string_agg(
            concat_ws('|', agreement_ref, org_id, coalesce(datasets, ''),
                coalesce(min_identifiability::VARCHAR, ''), coalesce(max_sensitivity, ''),
                coalesce(year_from::VARCHAR, ''), coalesce(year_to::VARCHAR, ''),
                coalesce(max_rows::VARCHAR, ''), valid_from, valid_to), ','
            ORDER BY agreement_ref
        )
        FROM agreements
    ), '')
) AS fingerprint;

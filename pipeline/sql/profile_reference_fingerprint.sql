-- A fingerprint of the reference data the daily summaries depend on (which UKPRN is which
-- org, its region and status, and every NPD agreement): summaries are rebuilt when it changes.
SELECT md5(
    coalesce((
        SELECT string_agg(
            concat_ws('|', org_id, ukprn, region, status, status_changed_on), ','
            ORDER BY org_id
        )
        FROM organisations
    ), '')
    || '#'
    || coalesce((
        SELECT string_agg(
            concat_ws('|', agreement_ref, org_id, datasets, min_identifiability, max_sensitivity,
                year_from, year_to, max_rows, valid_from, valid_to), ','
            ORDER BY agreement_ref
        )
        FROM agreements
    ), '')
) AS fingerprint;

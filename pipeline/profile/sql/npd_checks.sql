-- The agreement checks of NPD queries: the one definition of a breach, used by
-- profile_npd_day.sql (counted per org and day), evidence_npd_events.sql (one column per
-- query) and rank_npd_evidence.sql (example breaching queries). Run on a connection
-- (pipeline.profile.define_macros) before those queries.
--
-- npd_checks(e, a, day): `e` is the query's row, `a` the `agreements` row it claims (LEFT
-- JOINed on agreement_ref and org_id, so NULL when the reference does not exist or belongs
-- to another org) and `day` the day the query is checked on. Returns a struct of booleans,
-- one per check: the reference must exist and belong to the org; the day must be inside its
-- validity; dataset, years, identifiability, sensitivity and rows must be within its
-- limits. Sensitivity A is the most sensitive, identifiability 1 the most identifying.
CREATE OR REPLACE TEMP MACRO npd_checks(e, a, day) AS struct_pack(
    no_agreement := a.agreement_ref IS NULL,
    outside_validity := a.agreement_ref IS NOT NULL
        AND (day < a.valid_from OR day > a.valid_to),
    outside_datasets := a.agreement_ref IS NOT NULL
        AND NOT list_contains(list_transform(string_split(a.datasets, ';'), lambda x: trim(x)),
                              e.dataset),
    outside_years := a.agreement_ref IS NOT NULL
        AND (e.year_from < a.year_from OR e.year_to > a.year_to),
    beyond_identifiability := a.agreement_ref IS NOT NULL
        AND e.min_identifiability < a.min_identifiability,
    beyond_sensitivity := a.agreement_ref IS NOT NULL AND e.max_sensitivity < a.max_sensitivity,
    above_max_rows := a.agreement_ref IS NOT NULL AND e.rows_returned > a.max_rows
);

-- npd_breach(c): whether the checks `c` (an npd_checks struct) find a breach: any of them.
CREATE OR REPLACE TEMP MACRO npd_breach(c) AS
    c.no_agreement OR c.outside_validity OR c.outside_datasets OR c.outside_years
    OR c.beyond_identifiability OR c.beyond_sensitivity OR c.above_max_rows;

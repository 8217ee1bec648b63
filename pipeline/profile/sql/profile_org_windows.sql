-- Per org and window (long form): sums of the daily summaries over the trailing windows
-- 1d = [$day], 7d = [$d7, $day], 28d = [$d28, $day] and the history baseline
-- b28 = [$b_lo, $b_hi] (the 28 days before the 7-day window), with the shares derived from
-- them. Every organisation of temp `org_register` (the register plus unregistered callers)
-- gets a row per window, active or not (counts 0, shares NULL). Region features are NULL
-- for an org whose region is unknown (no evidence either way).
-- Distinct learners, search follow-through, repeat learners and age median over 7d / 28d
-- come from the bottom-k learner sample (exact below $sample_size learners).
-- Lagged follow-through is over search cohorts, not the windows (temp `followup_cohorts`,
-- see `profile_followup_cohorts.sql`); `followed_so_far` is over the open searches of the
-- 7-day window. Each is NULL below $min_followup sampled searches.
CREATE OR REPLACE TEMP TABLE org_windows AS
WITH w(win, lo, hi) AS (
    VALUES ('1d', $day::DATE, $day::DATE), ('7d', $d7::DATE, $day::DATE),
        ('28d', $d28::DATE, $day::DATE), ('b28', $b_lo::DATE, $b_hi::DATE)
),
lrs AS (
    SELECT
        w.win,
        d.org_id,
        sum(d.calls) AS calls,
        count(*) FILTER (WHERE d.calls > 0) AS active_days,
        sum(d.learners) AS learner_days,
        max(d.learners) AS max_day_learners,
        max(d.max_user_learners) AS max_user_learners,
        max(d.max_ips_hour) AS max_ips_hour,
        max(d.max_block_learners) AS max_block_learners,
        sum(d.c_demog) AS c_demog,
        sum(d.c_verify) AS c_verify,
        sum(d.c_register) AS c_register,
        sum(d.c_plr) AS c_plr,
        sum(d.c_plr_far) AS c_plr_far,
        sum(d.c_uln_lookup) AS c_uln_lookup,
        sum(d.c_batch) AS c_batch,
        sum(d.c_match) AS c_match,
        sum(d.c_no_match) AS c_no_match,
        sum(d.c_too_many) AS c_too_many,
        sum(d.c_possible) AS c_possible,
        sum(d.c_exact) AS c_exact,
        sum(d.c_plr_refused) AS c_plr_refused,
        sum(d.c_uln) AS c_uln,
        sum(d.c_uln_invalid) AS c_uln_invalid,
        sum(d.c_sweep) AS c_sweep,
        sum(d.c_age) AS c_age,
        sum(d.c_adult) AS c_adult,
        sum(d.c_older) AS c_older,
        sum(d.c_area) AS c_area,
        sum(d.c_out_region) AS c_out_region,
        sum(d.c_ooh) AS c_ooh,
        sum(d.c_night) AS c_night,
        sum(d.c_weekend) AS c_weekend,
        sum(d.c_script) AS c_script,
        sum(d.c_inactive) AS c_inactive
    FROM org_day AS d
    JOIN w ON d.day BETWEEN w.lo AND w.hi
    GROUP BY ALL
),
users AS (
    SELECT w.win, a.org_id, count(DISTINCT a.user_name) AS users_active
    FROM account_day AS a
    JOIN w ON a.day BETWEEN w.lo AND w.hi AND w.win <> 'b28'
    GROUP BY ALL
),
account_keys AS (
    -- addresses and agents per account are only kept for the short windows
    SELECT
        w.win,
        k.org_id,
        k.user_name,
        count(DISTINCT k.value) FILTER (WHERE k.kind = 'ip') AS ips,
        count(DISTINCT k.value) FILTER (WHERE k.kind = 'ua') AS uas
    FROM account_key_day AS k
    JOIN w ON k.day BETWEEN w.lo AND w.hi AND w.win IN ('1d', '7d')
    GROUP BY ALL
),
accounts AS (
    SELECT win, org_id, max(ips) AS max_user_ips, max(uas) AS max_user_uas
    FROM account_keys
    GROUP BY ALL
),
baseline_keys AS MATERIALIZED (
    SELECT DISTINCT org_id, kind, value
    FROM account_key_day
    WHERE day BETWEEN $b_lo AND $b_hi
),
baseline_orgs AS (
    SELECT DISTINCT org_id FROM baseline_keys
),
novelty AS (
    -- calls made from an address or with an agent the org did not use in the baseline
    SELECT
        w.win,
        k.org_id,
        sum(k.calls) FILTER (WHERE k.kind = 'ip' AND b.value IS NULL) AS c_new_ip,
        sum(k.calls) FILTER (WHERE k.kind = 'ua' AND b.value IS NULL) AS c_new_ua,
        sum(k.calls) FILTER (WHERE k.kind = 'ip') AS c_keyed
    FROM account_key_day AS k
    JOIN w ON k.day BETWEEN w.lo AND w.hi AND w.win IN ('1d', '7d')
    SEMI JOIN baseline_orgs AS bo ON bo.org_id = k.org_id
    LEFT JOIN baseline_keys AS b ON b.org_id = k.org_id AND b.kind = k.kind AND b.value = k.value
    GROUP BY ALL
),
areas AS (
    SELECT w.win, a.org_id, count(DISTINCT a.postcode_area) AS area_count
    FROM org_area_day AS a
    JOIN w ON a.day BETWEEN w.lo AND w.hi AND w.win <> 'b28'
    GROUP BY ALL
),
npd AS (
    SELECT
        w.win,
        n.org_id,
        sum(n.npd_queries) AS npd_queries,
        sum(n.npd_rows) AS npd_rows,
        sum(n.npd_identifying) AS npd_identifying,
        sum(n.npd_no_agreement) AS npd_no_agreement,
        sum(n.npd_outside_validity) AS npd_outside_validity,
        sum(n.npd_outside_datasets) AS npd_outside_datasets,
        sum(n.npd_outside_years) AS npd_outside_years,
        sum(n.npd_beyond_identifiability) AS npd_beyond_identifiability,
        sum(n.npd_beyond_sensitivity) AS npd_beyond_sensitivity,
        sum(n.npd_above_max_rows) AS npd_above_max_rows,
        sum(n.npd_breaches) AS npd_breaches
    FROM npd_org_day AS n
    JOIN w ON n.day BETWEEN w.lo AND w.hi
    GROUP BY ALL
),
followup AS (
    SELECT
        win,
        org_id,
        sum(n) AS n,
        sum(n_followed) / sum(n) AS followed,
        sum(n_never_again) / sum(n) AS never_again
    FROM followup_cohorts
    GROUP BY ALL
),
per_learner AS MATERIALIZED (
    SELECT
        org_id,
        learner_key,
        max(age) AS age,
        sum(calls) AS calls_28,
        bit_or(flags) AS flags_28,
        sum(calls) FILTER (WHERE day >= $d7) AS calls_7,
        bit_or(flags) FILTER (WHERE day >= $d7) AS flags_7,
        sum(calls) FILTER (WHERE day = $day) AS calls_1,
        bit_or(flags) FILTER (WHERE day = $day) AS flags_1
    FROM org_learner_day
    WHERE day BETWEEN $d28 AND $day
    GROUP BY org_id, learner_key
),
learner_long AS (
    SELECT '28d' AS win, org_id, learner_key, age, calls_28 AS calls, flags_28 AS flags
    FROM per_learner
    UNION ALL
    SELECT '7d' AS win, org_id, learner_key, age, calls_7 AS calls, flags_7 AS flags
    FROM per_learner
    WHERE calls_7 IS NOT NULL
    UNION ALL
    SELECT '1d' AS win, org_id, learner_key, age, calls_1 AS calls, flags_1 AS flags
    FROM per_learner
    WHERE calls_1 IS NOT NULL
),
sample AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY win, org_id ORDER BY learner_key) AS rn,
        count(*) OVER (PARTITION BY win, org_id) AS n
    FROM learner_long
),
learners AS (
    SELECT
        win,
        org_id,
        CASE
            WHEN max(n) < $sample_size THEN max(n)::DOUBLE
            -- bottom-k estimate: (k - 1) / (k-th smallest key as a fraction of the key space)
            ELSE ($sample_size - 1) / (max(learner_key)::DOUBLE / 18446744073709551616.0)
        END AS learners_est,
        count(*) AS sampled,
        count(*) FILTER (WHERE flags & 1 <> 0) AS s_searched,
        count(*) FILTER (WHERE flags & 1 <> 0 AND flags & 6 <> 0) AS s_followed,
        count(*) FILTER (WHERE flags & 4 <> 0) AS s_plr,
        count(*) FILTER (WHERE flags & 4 <> 0 AND flags & 3 = 0) AS s_plr_unlinked,
        count(*) FILTER (WHERE calls >= 2) AS s_repeat,
        median(age) AS age_median
    FROM sample
    WHERE rn <= $sample_size
    GROUP BY win, org_id
)
SELECT
    w.win,
    o.org_id,
    coalesce(l.calls, 0) AS calls,
    coalesce(l.active_days, 0) AS active_days,
    CASE WHEN w.win = '1d' THEN coalesce(l.learner_days, 0) ELSE coalesce(s.learners_est, 0) END
        AS learners,
    coalesce(u.users_active, 0) AS users_active,
    CASE WHEN w.win = '1d' THEN coalesce(l.learner_days, 0) ELSE coalesce(s.learners_est, 0) END
        / nullif(u.users_active, 0) AS learners_per_user,
    coalesce(l.max_user_learners, 0) AS max_user_learners,
    coalesce(a.max_user_ips, 0) AS max_user_ips,
    coalesce(a.max_user_uas, 0) AS max_user_uas,
    coalesce(l.max_ips_hour, 0) AS max_ips_hour,
    coalesce(l.max_block_learners, 0) AS max_block_learners,
    (l.c_demog + l.c_verify) / nullif(l.calls, 0) AS search_share,
    l.c_demog / nullif(l.calls, 0) AS demog_share,
    l.c_verify / nullif(l.calls, 0) AS verify_share,
    l.c_register / nullif(l.calls, 0) AS register_share,
    l.c_plr / nullif(l.calls, 0) AS plr_share,
    CASE WHEN o.region IS NOT NULL THEN coalesce(l.c_plr_far, 0) END AS plr_far,
    CASE WHEN o.region IS NOT NULL THEN l.c_plr_far / nullif(l.c_plr, 0) END AS plr_far_share,
    l.c_uln_lookup / nullif(l.calls, 0) AS uln_lookup_share,
    l.c_batch / nullif(l.calls, 0) AS batch_share,
    l.c_no_match / nullif(l.c_match, 0) AS no_match_share,
    l.c_exact / nullif(l.c_match, 0) AS exact_share,
    l.c_possible / nullif(l.c_match, 0) AS possible_share,
    l.c_too_many / nullif(l.c_match, 0) AS too_many_share,
    l.c_plr_refused / nullif(l.c_plr, 0) AS plr_refused_share,
    l.c_uln_invalid / nullif(l.c_uln, 0) AS invalid_uln_share,
    l.c_sweep / nullif(l.c_uln, 0) AS sweep_share,
    l.c_adult / nullif(l.c_age, 0) AS adult_share,
    l.c_older / nullif(l.c_age, 0) AS older_adult_share,
    s.age_median::DOUBLE AS age_median,
    CASE WHEN o.region IS NOT NULL THEN l.c_out_region / nullif(l.c_area, 0) END
        AS out_region_share,
    coalesce(ar.area_count, 0) AS area_count,
    l.c_ooh / nullif(l.calls, 0) AS out_of_hours_share,
    l.c_night / nullif(l.calls, 0) AS night_share,
    l.c_weekend / nullif(l.calls, 0) AS weekend_share,
    l.c_script / nullif(l.calls, 0) AS script_share,
    nv.c_new_ip / nullif(nv.c_keyed, 0) AS new_ip_share,
    nv.c_new_ua / nullif(nv.c_keyed, 0) AS new_ua_share,
    s.s_followed / nullif(s.s_searched, 0) AS followthrough,
    CASE WHEN fu.n >= $min_followup THEN fu.followed END AS lag_followthrough,
    CASE WHEN fu.n >= $min_followup THEN fu.never_again END AS never_seen_again_share,
    CASE WHEN fo.n >= $min_followup THEN fo.followed END AS followed_so_far,
    s.s_repeat / nullif(s.sampled, 0) AS repeat_learner_share,
    s.s_plr_unlinked / nullif(s.s_plr, 0) AS plr_unlinked_share,
    coalesce(l.c_inactive, 0) AS calls_while_inactive,
    coalesce(n.npd_queries, 0) AS npd_queries,
    coalesce(n.npd_rows, 0) AS npd_rows,
    coalesce(n.npd_identifying, 0) AS npd_identifying,
    coalesce(n.npd_no_agreement, 0) AS npd_no_agreement,
    coalesce(n.npd_outside_validity, 0) AS npd_outside_validity,
    coalesce(n.npd_outside_datasets, 0) AS npd_outside_datasets,
    coalesce(n.npd_outside_years, 0) AS npd_outside_years,
    coalesce(n.npd_beyond_identifiability, 0) AS npd_beyond_identifiability,
    coalesce(n.npd_beyond_sensitivity, 0) AS npd_beyond_sensitivity,
    coalesce(n.npd_above_max_rows, 0) AS npd_above_max_rows,
    coalesce(n.npd_breaches, 0) AS npd_breaches,
    CASE WHEN o.unregistered THEN coalesce(l.calls, 0) + coalesce(n.npd_queries, 0) ELSE 0 END
        AS unregistered_events
FROM org_register AS o
CROSS JOIN w
LEFT JOIN lrs AS l ON l.win = w.win AND l.org_id = o.org_id
LEFT JOIN users AS u ON u.win = w.win AND u.org_id = o.org_id
LEFT JOIN accounts AS a ON a.win = w.win AND a.org_id = o.org_id
LEFT JOIN novelty AS nv ON nv.win = w.win AND nv.org_id = o.org_id
LEFT JOIN areas AS ar ON ar.win = w.win AND ar.org_id = o.org_id
LEFT JOIN npd AS n ON n.win = w.win AND n.org_id = o.org_id
LEFT JOIN learners AS s ON s.win = w.win AND s.org_id = o.org_id
LEFT JOIN followup AS fu ON fu.win = w.win AND fu.org_id = o.org_id
LEFT JOIN followup AS fo ON fo.win = 'open' AND w.win = '7d' AND fo.org_id = o.org_id;

-- Per account and window (long form, 1d and 7d, plus the account's own 28-day baseline
-- b28 = [$b_lo, $b_hi] before the 7-day window): calls, learners, addresses and agents,
-- the operation / time / learner mix of its calls and its share of its org's calls, and
-- the lagged follow-through of the searches it made (temp `followup_cohorts`: did the org,
-- any account, follow them up; see `profile_followup_cohorts.sql`; NULL below
-- $min_followup sampled searches). Only accounts with a call in the 7-day window get rows.
-- The share of learners outside the
-- org's region is NULL when the org's region is unknown (temp `org_register`).
CREATE OR REPLACE TEMP TABLE account_windows AS
WITH w(win, lo, hi) AS (
    VALUES ('1d', $day::DATE, $day::DATE), ('7d', $d7::DATE, $day::DATE),
        ('b28', $b_lo::DATE, $b_hi::DATE)
),
sums AS (
    SELECT
        w.win,
        a.org_id,
        a.user_name,
        sum(a.calls) AS calls,
        sum(a.learners) AS learner_days,
        max(a.max_ips_hour) AS max_ips_hour,
        sum(a.c_demog + a.c_verify) AS c_search,
        sum(a.c_register) AS c_register,
        sum(a.c_plr) AS c_plr,
        sum(a.c_ooh) AS c_ooh,
        sum(a.c_night) AS c_night,
        sum(a.c_script) AS c_script,
        sum(a.c_area) AS c_area,
        sum(a.c_out_region) AS c_out_region,
        sum(a.c_age) AS c_age,
        sum(a.c_adult) AS c_adult,
        sum(a.c_older) AS c_older,
        sum(a.c_uln) AS c_uln,
        sum(a.c_uln_invalid) AS c_uln_invalid
    FROM account_day AS a
    JOIN w ON a.day BETWEEN w.lo AND w.hi
    GROUP BY ALL
),
keys AS (
    SELECT
        w.win,
        k.org_id,
        k.user_name,
        count(DISTINCT k.value) FILTER (WHERE k.kind = 'ip') AS ips,
        count(DISTINCT k.value) FILTER (WHERE k.kind = 'ua') AS uas
    FROM account_key_day AS k
    JOIN w ON k.day BETWEEN w.lo AND w.hi AND w.win <> 'b28'
    GROUP BY ALL
),
followup AS (
    SELECT
        win,
        org_id,
        user_name,
        n,
        n_followed / n AS followed,
        n_never_again / n AS never_again
    FROM followup_cohorts
),
accounts AS (
    SELECT DISTINCT org_id, user_name
    FROM account_day
    WHERE day BETWEEN $d7 AND $day
),
org_calls AS (
    SELECT win, org_id, sum(calls) AS org_calls FROM sums GROUP BY ALL
)
SELECT
    w.win,
    ac.org_id,
    ac.user_name,
    coalesce(s.calls, 0) AS calls,
    coalesce(s.learner_days, 0) AS learners,
    coalesce(k.ips, 0) AS ips,
    coalesce(k.uas, 0) AS uas,
    coalesce(s.max_ips_hour, 0) AS max_ips_hour,
    s.c_search / nullif(s.calls, 0) AS search_share,
    s.c_register / nullif(s.calls, 0) AS register_share,
    s.c_plr / nullif(s.calls, 0) AS plr_share,
    s.c_ooh / nullif(s.calls, 0) AS out_of_hours_share,
    s.c_night / nullif(s.calls, 0) AS night_share,
    s.c_script / nullif(s.calls, 0) AS script_share,
    CASE WHEN o.region IS NOT NULL THEN s.c_out_region / nullif(s.c_area, 0) END
        AS out_region_share,
    s.c_adult / nullif(s.c_age, 0) AS adult_share,
    s.c_older / nullif(s.c_age, 0) AS older_adult_share,
    s.c_uln_invalid / nullif(s.c_uln, 0) AS invalid_uln_share,
    s.calls / nullif(oc.org_calls, 0) AS org_call_share,
    CASE WHEN fu.n >= $min_followup THEN fu.followed END AS lag_followthrough,
    CASE WHEN fu.n >= $min_followup THEN fu.never_again END AS never_seen_again_share,
    CASE WHEN fo.n >= $min_followup THEN fo.followed END AS followed_so_far
FROM accounts AS ac
CROSS JOIN w
LEFT JOIN sums AS s ON s.win = w.win AND s.org_id = ac.org_id AND s.user_name = ac.user_name
LEFT JOIN keys AS k ON k.win = w.win AND k.org_id = ac.org_id AND k.user_name = ac.user_name
LEFT JOIN org_calls AS oc ON oc.win = w.win AND oc.org_id = ac.org_id
LEFT JOIN org_register AS o ON o.org_id = ac.org_id
LEFT JOIN followup AS fu
    ON fu.win = w.win AND fu.org_id = ac.org_id AND fu.user_name = ac.user_name
LEFT JOIN followup AS fo
    ON fo.win = 'open' AND w.win = '7d' AND fo.org_id = ac.org_id
    AND fo.user_name = ac.user_name;

-- Per account (org_id + user_name) and day: additive counts of calls by operation, outcome,
-- learner, time and entitlement (the org's daily counts are their sums), exact distinct
-- learners, addresses and agents that day, and the most addresses used within one clock
-- hour (concurrent use of one account from several places). Reads temp `day_events`.
CREATE OR REPLACE TEMP TABLE new_account_day AS
WITH hourly AS (
    SELECT org_id, user_name, count(DISTINCT ip_key) AS ips
    FROM day_events
    GROUP BY org_id, user_name, hour_utc
),
concurrent AS (
    SELECT org_id, user_name, max(ips) AS max_ips_hour
    FROM hourly
    GROUP BY ALL
)
SELECT
    $day::DATE AS day,
    e.org_id,
    e.user_name,
    count(*) AS calls,
    count(DISTINCT e.learner_key) AS learners,
    count(DISTINCT e.ip_key) AS ips,
    count(DISTINCT e.ua_key) AS uas,
    any_value(c.max_ips_hour) AS max_ips_hour,
    count(*) FILTER (WHERE e.is_demog) AS c_demog,
    count(*) FILTER (WHERE e.is_verify) AS c_verify,
    count(*) FILTER (WHERE e.is_register) AS c_register,
    count(*) FILTER (WHERE e.is_plr) AS c_plr,
    count(*) FILTER (WHERE e.is_plr AND e.is_out_region AND e.learner_age >= $older_adult_age)
        AS c_plr_far,
    count(*) FILTER (WHERE e.is_uln_lookup) AS c_uln_lookup,
    count(*) FILTER (WHERE e.is_batch) AS c_batch,
    count(*) FILTER (WHERE e.is_match_response) AS c_match,
    count(*) FILTER (WHERE e.response_code = 'WSRC0001') AS c_no_match,
    count(*) FILTER (WHERE e.response_code = 'WSRC0002') AS c_too_many,
    count(*) FILTER (WHERE e.response_code = 'WSRC0003') AS c_possible,
    count(*) FILTER (WHERE e.response_code = 'WSRC0004') AS c_exact,
    count(*) FILTER (WHERE e.is_plr AND e.response_code IN ('WSEC0206', 'WSEC0208'))
        AS c_plr_refused,
    count(e.uln_valid) AS c_uln,
    count(*) FILTER (WHERE NOT e.uln_valid) AS c_uln_invalid,
    count(e.learner_age) AS c_age,
    count(*) FILTER (WHERE e.learner_age >= $adult_age) AS c_adult,
    count(*) FILTER (WHERE e.learner_age >= $older_adult_age) AS c_older,
    count(e.postcode_area) AS c_area,
    count(*) FILTER (WHERE e.is_out_region) AS c_out_region,
    count(*) FILTER (
        WHERE e.weekend OR e.local_hour < $office_start OR e.local_hour >= $office_end
    ) AS c_ooh,
    count(*) FILTER (WHERE e.local_hour >= $night_start OR e.local_hour < $night_end) AS c_night,
    count(*) FILTER (WHERE e.weekend) AS c_weekend,
    count(*) FILTER (WHERE e.is_script) AS c_script,
    count(*) FILTER (WHERE e.is_inactive) AS c_inactive
FROM day_events AS e
JOIN concurrent AS c USING (org_id, user_name)
GROUP BY e.org_id, e.user_name;

-- Per org and day: the sums of its accounts' daily counts (temp `new_account_day`), its
-- exact distinct learners (temp `new_learner_day`), and sweep statistics over ULN blocks:
-- the most distinct ULNs in one 7-digit block and the calls in blocks with at least
-- $sweep_min distinct ULNs (near-sequential sweeps). Reads temp `day_events` for blocks.
CREATE OR REPLACE TEMP TABLE new_org_day AS
WITH blocks AS (
    SELECT org_id, block_key, count(DISTINCT learner_key) AS learners, count(*) AS calls
    FROM day_events
    WHERE block_key IS NOT NULL
    GROUP BY ALL
),
block_stats AS (
    SELECT
        org_id,
        max(learners) AS max_block_learners,
        coalesce(sum(calls) FILTER (WHERE learners >= $sweep_min), 0) AS c_sweep
    FROM blocks
    GROUP BY ALL
),
learners AS (
    SELECT org_id, max(org_learners) AS learners FROM new_learner_day GROUP BY ALL
),
accounts AS (
    SELECT
        org_id,
        sum(calls) AS calls,
        count(*) AS users,
        max(learners) AS max_user_learners,
        max(max_ips_hour) AS max_ips_hour,
        sum(c_demog) AS c_demog,
        sum(c_verify) AS c_verify,
        sum(c_register) AS c_register,
        sum(c_plr) AS c_plr,
        sum(c_plr_far) AS c_plr_far,
        sum(c_uln_lookup) AS c_uln_lookup,
        sum(c_batch) AS c_batch,
        sum(c_match) AS c_match,
        sum(c_no_match) AS c_no_match,
        sum(c_too_many) AS c_too_many,
        sum(c_possible) AS c_possible,
        sum(c_exact) AS c_exact,
        sum(c_plr_refused) AS c_plr_refused,
        sum(c_uln) AS c_uln,
        sum(c_uln_invalid) AS c_uln_invalid,
        sum(c_age) AS c_age,
        sum(c_adult) AS c_adult,
        sum(c_older) AS c_older,
        sum(c_area) AS c_area,
        sum(c_out_region) AS c_out_region,
        sum(c_ooh) AS c_ooh,
        sum(c_night) AS c_night,
        sum(c_weekend) AS c_weekend,
        sum(c_script) AS c_script,
        sum(c_inactive) AS c_inactive
    FROM new_account_day
    GROUP BY org_id
)
SELECT
    $day::DATE AS day,
    a.org_id,
    a.calls,
    coalesce(l.learners, 0) AS learners,
    a.* EXCLUDE (org_id, calls),
    coalesce(b.max_block_learners, 0) AS max_block_learners,
    coalesce(b.c_sweep, 0) AS c_sweep
FROM accounts AS a
LEFT JOIN learners AS l USING (org_id)
LEFT JOIN block_stats AS b USING (org_id);

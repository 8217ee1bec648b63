-- Per org and day: the bottom-k learner sample (the k smallest learner keys), each with
-- its calls, what was done to it (flags: 1 searched or verified, 2 registered or updated,
-- 4 PLR read, 8 looked up by ULN), its age and the account that searched or verified it
-- (`searcher`, the first user name in sort order; NULL when not searched), plus the org's exact count of distinct
-- learners that day (`org_learners`, repeated on each row). Because keys are uniform
-- hashes, the union of daily samples over a window contains the window's own bottom-k
-- sample, so windows get exact flags for a uniform sample of their learners.
-- Reads temp `day_events`.
CREATE OR REPLACE TEMP TABLE new_learner_day AS
SELECT
    $day::DATE AS day,
    org_id,
    learner_key,
    count(*) AS calls,
    bit_or(
        (is_demog OR is_verify)::UTINYINT
        + 2 * is_register::UTINYINT
        + 4 * is_plr::UTINYINT
        + 8 * is_uln_lookup::UTINYINT
    ) AS flags,
    max(learner_age) AS age,
    min(user_name) FILTER (WHERE is_demog OR is_verify) AS searcher,
    count(*) OVER (PARTITION BY org_id) AS org_learners
FROM day_events
WHERE learner_key IS NOT NULL
GROUP BY org_id, learner_key
QUALIFY row_number() OVER (PARTITION BY org_id ORDER BY learner_key) <= $sample_size;

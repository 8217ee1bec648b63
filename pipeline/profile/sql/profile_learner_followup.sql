-- Per-learner follow-through with a lag: each search (or verify) of a learner by an org on
-- a day in the lookback [$lag_lo, $day], with the account that made it and what the org
-- (any account) did with that learner afterwards. Read from the bottom-k learner sample
-- (`org_learner_day`), never from raw events.
--
-- Coordinated sample: a learner is used only when its key is at or below the org's
-- smallest daily sample threshold over the lookback (`tau`; NULL when no day of the org
-- was truncated), so every day on which a used learner had a call is in the sample and
-- its history is complete. The used learners are a uniform sample of the org's learners.
--
-- followed:   registered, updated or record-read on the search day, or any call about the
--             learner (re-search, verify, ULN look-up, registration, update, record read)
--             on the `$lag_days` days after it, as far as seen up to $day;
-- closed:     the search's lag window is over ($day >= search day + $lag_days), so
--             `followed` is final;
-- seen_again: any call about the learner on a later day up to $day, or a registration,
--             update or record read on the search day.
CREATE OR REPLACE TEMP TABLE learner_followup AS
WITH days AS (
    SELECT org_id, day, CASE WHEN max(org_learners) > count(*) THEN max(learner_key) END AS cut
    FROM org_learner_day
    WHERE day BETWEEN $lag_lo AND $day
    GROUP BY ALL
),
tau AS (
    SELECT org_id, min(cut) AS tau FROM days GROUP BY org_id
),
obs AS MATERIALIZED (
    SELECT l.org_id, l.learner_key, l.day, l.flags, l.searcher
    FROM org_learner_day AS l
    JOIN tau AS t ON t.org_id = l.org_id
    WHERE l.day BETWEEN $lag_lo AND $day AND (t.tau IS NULL OR l.learner_key <= t.tau)
)
SELECT
    s.org_id,
    s.learner_key,
    s.day AS search_day,
    s.searcher,
    s.day + $lag_days <= $day::DATE AS closed,
    (s.flags & 6 <> 0) OR coalesce(bool_or(o.day <= s.day + $lag_days), false) AS followed,
    (s.flags & 6 <> 0) OR count(o.day) > 0 AS seen_again
FROM obs AS s
LEFT JOIN obs AS o ON o.org_id = s.org_id AND o.learner_key = s.learner_key AND o.day > s.day
WHERE s.flags & 1 <> 0
GROUP BY s.org_id, s.learner_key, s.day, s.searcher, s.flags;

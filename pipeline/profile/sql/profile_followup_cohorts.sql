-- Per org, searching account and search cohort: the sampled searches of temp
-- `learner_followup` and how many were followed up within the lag or never seen again.
-- Cohorts: 7d = searches on [$c7_lo, $c_hi] (the 7 most recent days whose lag window is
-- over), 28d = [$b_lo, $c_hi], b28 = [$b_lo, $c7_lo - 1] (closed searches before the 7d
-- cohort), open = the searches of the 7-day window [$d7, $day] whose lag is not over
-- (follow-ups seen so far). Org and account windows sum these.
CREATE OR REPLACE TEMP TABLE followup_cohorts AS
WITH cohort(win, lo, hi) AS (
    VALUES ('7d', $c7_lo::DATE, $c_hi::DATE), ('28d', $b_lo::DATE, $c_hi::DATE),
        ('b28', $b_lo::DATE, $c7_lo::DATE - 1), ('open', $d7::DATE, $day::DATE)
)
SELECT
    c.win,
    f.org_id,
    f.searcher AS user_name,
    count(*) AS n,
    count(*) FILTER (WHERE f.followed) AS n_followed,
    count(*) FILTER (WHERE NOT f.seen_again) AS n_never_again
FROM learner_followup AS f
JOIN cohort AS c ON f.search_day BETWEEN c.lo AND c.hi
WHERE f.closed = (c.win <> 'open')
GROUP BY ALL;

-- One organisation ($org) day by day over [$first, $last]: its org-level score and rank
-- (NULL when the day was not scored, or the org was outside the stored list), the rules that
-- fired for it or its accounts (';'-separated), and its daily volumes from `features` (kept
-- for every profiled day, unlike the daily summaries): LRS calls, distinct learners and
-- active accounts, NPD queries and agreement breaches. NULL volumes: the day was not profiled.
WITH days AS (
    SELECT CAST(d AS DATE) AS day
    FROM generate_series(CAST($first AS DATE), CAST($last AS DATE), INTERVAL 1 DAY) AS t(d)
),
fired AS (
    SELECT day, string_agg(DISTINCT rule_id, ';' ORDER BY rule_id) AS rules
    FROM rule_hits
    WHERE org_id = $org AND day BETWEEN $first AND $last
    GROUP BY day
)
SELECT
    d.day,
    s.score,
    x.rank,
    coalesce(h.rules, '') AS rules,
    CAST(f.calls_1d AS BIGINT) AS calls,
    CAST(f.learners_1d AS BIGINT) AS learners,
    CAST(f.users_active_1d AS BIGINT) AS users,
    CAST(f.npd_queries_1d AS BIGINT) AS npd_queries,
    CAST(f.npd_breaches_1d AS BIGINT) AS npd_breaches
FROM days AS d
LEFT JOIN scores AS s ON s.day = d.day AND s.level = 'org' AND s.org_id = $org
LEFT JOIN suspects AS x ON x.day = d.day AND x.level = 'org' AND x.org_id = $org
LEFT JOIN fired AS h ON h.day = d.day
LEFT JOIN features AS f ON f.day = d.day AND f.org_id = $org
ORDER BY d.day;

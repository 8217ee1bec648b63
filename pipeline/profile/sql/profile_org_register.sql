-- The organisations profiled on $day: every row of the register (`organisations`), plus
-- every organisation its events name that the register does not hold (unregistered = true),
-- seen in the daily summaries of the 28-day window [$d28, $day]: an LRS caller whose UKPRN
-- matches no org (synthetic id `UKPRN-<ukprn>`, from profile_day_events.sql) and an NPD
-- org_id absent from the register (its own id). An unregistered org has org_type
-- 'unknown' and every other register field NULL (no region, status, size or registration
-- date): the register says nothing about it. first_seen / last_seen: its first and last day
-- with a call or query in the window (NULL for registered orgs).
CREATE OR REPLACE TEMP TABLE org_register AS
WITH events AS (
    SELECT org_id, day FROM org_day WHERE day BETWEEN $d28 AND $day AND calls > 0
    UNION ALL
    SELECT org_id, day FROM npd_org_day WHERE day BETWEEN $d28 AND $day AND npd_queries > 0
),
seen AS (
    SELECT org_id, min(day) AS first_seen, max(day) AS last_seen FROM events GROUP BY org_id
)
SELECT o.*, false AS unregistered
FROM organisations AS o
UNION ALL BY NAME
SELECT
    s.org_id,
    CASE WHEN s.org_id LIKE 'UKPRN-%' THEN substr(s.org_id, 7) END AS ukprn,
    CASE
        WHEN s.org_id LIKE 'UKPRN-%' THEN 'UKPRN ' || substr(s.org_id, 7)
        ELSE 'NPD org_id ' || s.org_id
    END || ' (not in the register)' AS name,
    'unknown' AS org_type,
    true AS unregistered,
    s.first_seen,
    s.last_seen
FROM seen AS s
ANTI JOIN organisations AS o ON o.org_id = s.org_id;

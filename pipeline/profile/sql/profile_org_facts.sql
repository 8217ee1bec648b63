-- Per org on $day (temp `org_register`: the register plus unregistered callers): register
-- facts (type, size band - NULL when expected_learners is empty, an "unknown" band whose
-- peers are the org type -, age of registration - NULL when unknown -, recent change of
-- name, status, whether the org is in the register at all) and the silent gap before recent activity: the longest run of days without
-- a call that ended with a call inside the 28-day window, counted back no further than
-- $history_start (the first day with lake data in the lookback, or the registration day).
CREATE OR REPLACE TEMP TABLE org_facts AS
WITH active AS (
    SELECT org_id, day
    FROM org_day
    WHERE calls > 0 AND day BETWEEN $history_start AND $day
),
gaps AS (
    SELECT
        a.org_id,
        a.day,
        datediff(
            'day',
            coalesce(
                lag(a.day) OVER (PARTITION BY a.org_id ORDER BY a.day),
                greatest($history_start::DATE, o.registered_on) - 1
            ),
            a.day
        ) - 1 AS gap
    FROM active AS a
    JOIN org_register AS o USING (org_id)
),
recent AS (
    SELECT org_id, greatest(max(gap), 0) AS silent_gap
    FROM gaps
    WHERE day >= $d28
    GROUP BY org_id
)
SELECT
    o.org_id,
    o.org_type,
    o.region,
    o.status,
    o.expected_learners,
    CASE WHEN o.expected_learners IS NOT NULL
        THEN len(list_filter($band_edges::INTEGER[], lambda e: e <= o.expected_learners))
    END AS size_band,
    datediff('day', o.registered_on, $day::DATE)::DOUBLE AS org_age_days,
    datediff('day', o.name_changed_on, $day::DATE)::DOUBLE AS days_since_name_change,
    (o.name_changed_on IS NOT NULL
        AND datediff('day', o.name_changed_on, $day::DATE) BETWEEN 0 AND $recent_name_days
    )::DOUBLE AS recent_name_change,
    (o.status IN ('suspended', 'revoked', 'closed'))::DOUBLE AS inactive_status,
    coalesce(r.silent_gap, 0)::DOUBLE AS silent_gap,
    o.unregistered::DOUBLE AS unregistered
FROM org_register AS o
LEFT JOIN recent AS r USING (org_id);

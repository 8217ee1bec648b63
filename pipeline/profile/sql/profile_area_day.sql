-- Per org and day: calls per learner postcode area (spread of where learners live).
-- Reads temp `day_events`.
CREATE OR REPLACE TEMP TABLE new_area_day AS
SELECT $day::DATE AS day, org_id, postcode_area, count(*) AS calls
FROM day_events
WHERE postcode_area IS NOT NULL
GROUP BY org_id, postcode_area;

-- Per account and day: the client addresses ('ip') and user agents ('ua') it used (as
-- 64-bit hashes), with call counts. Windows count distinct addresses over days from these sets, and spot
-- addresses or agents an organisation had not used before. Reads temp `day_events`.
CREATE OR REPLACE TEMP TABLE new_account_key_day AS
SELECT $day::DATE AS day, org_id, user_name, 'ip' AS kind, ip_key AS value, count(*) AS calls
FROM day_events
GROUP BY org_id, user_name, ip_key
UNION ALL
SELECT $day::DATE AS day, org_id, user_name, 'ua' AS kind, ua_key AS value, count(*) AS calls
FROM day_events
GROUP BY org_id, user_name, ua_key;

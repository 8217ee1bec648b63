-- Every stored org row of the ranked lists before $day: the days on which an org could
-- have been alerted (whether it qualified is decided in Python, from rules.toml severities).
SELECT org_id, day, score, rules
FROM suspects
WHERE level = 'org' AND day < $day
ORDER BY day, rank

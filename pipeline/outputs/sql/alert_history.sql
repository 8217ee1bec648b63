-- The stored org rows of the ranked lists before $day that may have qualified for an alert
-- (at or above $min_score, or with a rule): whether a rule was severe enough is decided in
-- Python, from rules.toml severities.
SELECT org_id, day, score, rules
FROM suspects
WHERE level = 'org' AND day < $day AND (score >= $min_score OR rules <> '[]')
ORDER BY day, rank

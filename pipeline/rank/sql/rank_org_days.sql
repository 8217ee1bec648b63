-- Org-days as the learned layer compares them (pipeline.rank.learned): every feature of
-- `features` on the days [$lo, $day], beside the unsupervised scores of the same org-day
-- (`scores`, org level) - its model part, rule part, final score and hard-fact flag.
-- With $all_orgs every org of the window, else only those in the list $orgs.
SELECT
    f.*,
    s.models AS unsupervised_models,
    s.rules AS unsupervised_rules,
    s.score AS unsupervised_score,
    s.hard_fact AS unsupervised_hard_fact
FROM features AS f
JOIN scores AS s ON s.day = f.day AND s.org_id = f.org_id AND s.level = 'org'
WHERE f.day BETWEEN $lo AND $day
    AND ($all_orgs OR f.org_id IN (SELECT unnest($orgs::VARCHAR[])))
ORDER BY f.day, f.org_id

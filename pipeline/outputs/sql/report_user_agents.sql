-- The most frequent user agents of each reported organisation's LRS calls in a window: for
-- each org of the temp table `report_orgs` (org_id, ukprn), up to $agents agents by calls,
-- with the accounts that sent each and whether it is a scripting tool. Reads the lake files
-- $files of the window. User agents are free text from the logs (attacker-controlled): the
-- report escapes them.
SELECT org_id, user_agent, calls, accounts, script
FROM (
    SELECT
        o.org_id,
        coalesce(e.user_agent, '') AS user_agent,
        count(*) AS calls,
        count(DISTINCT e.user_name) AS accounts,
        coalesce(regexp_matches(coalesce(e.user_agent, ''), $script_pattern), false) AS script,
        row_number() OVER (
            PARTITION BY o.org_id ORDER BY count(*) DESC, coalesce(e.user_agent, '')
        ) AS rn
    FROM read_parquet($files, hive_partitioning = false) AS e
    JOIN report_orgs AS o ON o.ukprn = e.ukprn
    GROUP BY o.org_id, coalesce(e.user_agent, '')
)
WHERE rn <= $agents
ORDER BY org_id, rn

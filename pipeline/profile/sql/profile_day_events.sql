-- One profiled day's LRS events joined to their organisation, reduced to the compact
-- derived columns every daily summary needs (read straight from the lake files $files of
-- the day's partition; only the columns used are read). Also reads `organisations` and the
-- temp table `area_region` (postcode area -> region). An event whose UKPRN names no
-- registered organisation is kept under the synthetic org id `UKPRN-<ukprn>` (an
-- unregistered caller, see profile_org_register.sql). A learner is outside the org's
-- region only when the org's region is known.
CREATE OR REPLACE TEMP TABLE day_events AS
WITH raw AS (
    SELECT
        ukprn,
        user_name,
        occurred_at,
        timezone($tz, occurred_at) AS local_ts,
        operation,
        channel,
        response_code,
        learner_pid,
        uln_block_pid,
        uln_valid,
        learner_age,
        postcode_area,
        client_ip,
        user_agent
    FROM read_parquet($files, hive_partitioning = false)
),
agents AS (
    -- the pattern is matched once per distinct agent, not once per call
    -- (an empty user agent is stored as NULL: it is matched as '' and its calls are kept)
    SELECT
        user_agent,
        coalesce(regexp_matches(coalesce(user_agent, ''), $script_pattern), false) AS is_script
    FROM (SELECT DISTINCT user_agent FROM raw)
)
SELECT
    coalesce(o.org_id, 'UKPRN-' || e.ukprn) AS org_id,
    e.user_name,
    date_trunc('hour', e.occurred_at) AS hour_utc,
    hour(e.local_ts) AS local_hour,
    isodow(e.local_ts) >= 6 AS weekend,
    -- 64-bit keys of the pseudonyms (DuckDB's hash: uniform, so also a sampling key)
    -- (hash(NULL) is not NULL: keep missing pseudonyms missing)
    CASE WHEN e.learner_pid IS NOT NULL THEN hash(e.learner_pid) END AS learner_key,
    CASE WHEN e.uln_block_pid IS NOT NULL THEN hash(e.uln_block_pid) END AS block_key,
    e.uln_valid,
    e.learner_age,
    e.postcode_area,
    e.response_code,
    -- addresses and agents only need identity: 64-bit hashes are cheaper than the text
    hash(e.client_ip) AS ip_key,
    hash(e.user_agent) AS ua_key,
    lrs_is_demographic(e.operation) AS is_demog,
    lrs_is_verify(e.operation) AS is_verify,
    lrs_is_register(e.operation) AS is_register,
    lrs_is_record_read(e.operation) AS is_plr,
    lrs_is_uln_lookup(e.operation) AS is_uln_lookup,
    e.channel = 'batch' OR lrs_is_batch(e.operation) AS is_batch,
    e.response_code IN ('WSRC0001', 'WSRC0002', 'WSRC0003', 'WSRC0004', 'WSRC0022')
        AS is_match_response,
    a.is_script,
    e.postcode_area IS NOT NULL AND o.region IS NOT NULL
        AND ar.region IS DISTINCT FROM o.region AS is_out_region,
    coalesce(
        o.status IN ('suspended', 'revoked', 'closed')
            AND (o.status_changed_on IS NULL OR $day >= o.status_changed_on),
        false
    ) AS is_inactive
FROM raw AS e
LEFT JOIN organisations AS o ON o.ukprn = e.ukprn
JOIN agents AS a ON a.user_agent IS NOT DISTINCT FROM e.user_agent
LEFT JOIN area_region AS ar ON ar.area = e.postcode_area;

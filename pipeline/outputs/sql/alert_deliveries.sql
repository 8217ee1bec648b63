-- The missing and refused deliveries of $day still standing: a missing folder that was
-- committed since, or a refused file that a later attempt committed, is no longer a problem.
SELECT l.source, l.status, l.reason
FROM ingest_ledger AS l
WHERE l.delivery_day = $day
  AND l.source IN ('lrs', 'npd')
  AND l.status IN ('missing', 'refused')
  AND NOT EXISTS (
    SELECT 1 FROM ingest_ledger AS c
    WHERE c.status = 'committed'
      AND c.source = l.source
      AND c.delivery_day = l.delivery_day
      AND (l.status = 'missing' OR c.source_file = l.source_file)
      AND c.started_at >= l.started_at
  )
ORDER BY l.source, l.status

-- Rows of this run: the first occurrence of each event_id (in file order, then line order),
-- without ids already in the lake. Reads the temp tables `staged` (this run's valid rows)
-- and `existing_ids` (event ids of the lake partitions this run touches).
CREATE OR REPLACE TEMP TABLE deduped AS
SELECT * EXCLUDE (_rn)
FROM (
    SELECT
        s.*,
        row_number() OVER (PARTITION BY s.event_id ORDER BY s._file_seq, s.source_line) AS _rn
    FROM staged AS s
    ANTI JOIN existing_ids AS e USING (event_id)
)
WHERE _rn = 1;

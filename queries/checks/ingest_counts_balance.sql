-- question: Is there a file whose records_read differs from records_parsed + records_rejected?
-- grain: one row per offending file (empty = pass)
-- inputs: stg_ingest__files
select bundle_id, node, source_file, records_read, records_parsed, records_rejected
from stg_ingest__files
where records_read <> records_parsed + records_rejected

-- question: Is there a file whose rejected count differs from its rows in ingest_errors?
-- grain: one row per offending file (empty = pass)
-- inputs: stg_ingest__files, stg_ingest__errors
with logged as (
    select bundle_id, node, source_file, count(*) as n
    from stg_ingest__errors
    where severity = 'rejected'
    group by all
)

select f.bundle_id, f.node, f.source_file, f.records_rejected, coalesce(l.n, 0) as logged
from stg_ingest__files as f
left join logged as l using (bundle_id, node, source_file)
where f.records_rejected <> coalesce(l.n, 0)

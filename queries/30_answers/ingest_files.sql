-- question: Which files were ingested, as what kind, and were all their records accounted for?
-- grain: one row per input file
-- inputs: stg_ingest__files
with files as (
    select * from stg_ingest__files
),

final as (
    select
        bundle_id,
        node,
        source_file,
        coalesce(kind, '-') as kind,
        records_read,
        records_parsed,
        records_rejected,
        warnings,
        status,
        reason,
        size_bytes
    from files
)

select * from final
order by bundle_id, node, source_file

-- question: Which records could not be parsed (or drew a warning), where, and why?
-- grain: one row per rejected record or file-level warning
-- inputs: raw_ingest_errors
with source as (
    select * from raw_ingest_errors
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line as line,
        byte_offset,
        case when is_rejection then 'rejected' else 'warning' end as severity,
        reason,
        raw
    from source
)

select * from final

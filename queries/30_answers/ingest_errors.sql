-- question: Which records were rejected or drew warnings, at which file and line, and why?
-- grain: one row per rejected record or warning
-- inputs: stg_ingest__errors
with errors as (
    select * from stg_ingest__errors
),

final as (
    select
        bundle_id,
        node,
        source_file,
        line,
        byte_offset,
        severity,
        reason,
        raw
    from errors
)

select * from final
order by bundle_id, node, source_file, line nulls last, byte_offset nulls last

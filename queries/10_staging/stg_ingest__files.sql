-- question: Which input files were read, as what kind, and how many of their records were used?
-- grain: one row per input file (bundle, node, path)
-- inputs: raw_ingest_files
with source as (
    select * from raw_ingest_files
),

final as (
    select
        bundle_id,
        node,
        source_file,
        kind,
        status,
        reason,
        records_read,
        records_parsed,
        records_rejected,
        warnings,
        size_bytes,
        content_sha256
    from source
)

select * from final

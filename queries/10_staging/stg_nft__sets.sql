-- question: Which nftables sets and maps did each node have, with their types?
-- grain: one row per set or map per file
-- inputs: raw_nft_sets
with source as (
    select * from raw_nft_sets
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        format,
        family,
        table_name,
        name,
        kind,
        handle,
        key_type,
        data_type,
        flags,
        timeout_s,
        size,
        policy,
        comment,
        element_count
    from source
)

select * from final

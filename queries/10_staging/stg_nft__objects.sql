-- question: Which other named nftables objects (counters, quotas, flowtables) did each node have?
-- grain: one row per object per file
-- inputs: raw_nft_objects
with source as (
    select * from raw_nft_objects
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
        kind,
        name,
        handle
    from source
)

select * from final

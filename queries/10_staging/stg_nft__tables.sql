-- question: Which nftables tables did each node list (text or JSON)?
-- grain: one row per table per file
-- inputs: raw_nft_tables
with source as (
    select * from raw_nft_tables
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
        handle,
        flags,
        comment
    from source
)

select * from final

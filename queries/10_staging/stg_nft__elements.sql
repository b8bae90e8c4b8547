-- question: Which elements did each nftables set or map hold?
-- grain: one row per element per file
-- inputs: raw_nft_elements
with source as (
    select * from raw_nft_elements
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
        set_name,
        position,
        element,
        key,
        value,
        comment,
        options
    from source
)

select * from final

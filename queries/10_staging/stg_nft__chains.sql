-- question: Which nftables chains did each node have, with hook, priority and policy?
-- grain: one row per chain per file
-- inputs: raw_nft_chains
with source as (
    select * from raw_nft_chains
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
        chain,
        handle,
        chain_type,
        hook,
        priority,
        policy,
        device,
        comment
    from source
)

select * from final

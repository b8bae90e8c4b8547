-- question: Which nftables rules did each node have, in chain order?
-- grain: one row per rule per file
-- inputs: raw_nft_rules
with source as (
    select * from raw_nft_rules
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
        position,
        handle,
        rule,
        verdict,
        target,
        nat,
        nat_args,
        set_refs,
        comment,
        pkts,
        bytes,
        has_xt
    from source
)

select * from final

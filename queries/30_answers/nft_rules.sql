-- question: Which nftables rules did each node have, in chain order, with their chain's hook?
-- grain: one row per rule per file (a node with both nft list ruleset and nft -j has two)
-- inputs: stg_nft__rules, stg_nft__chains
with rules as (
    select * from stg_nft__rules
),

chains as (
    select * from stg_nft__chains
),

final as (
    select
        r.node,
        r.source_file,
        r.source_line,
        r.family,
        r.table_name,
        r.chain,
        r.position,
        r.handle,
        r.rule,
        r.verdict,
        r.target,
        -- why: kube-proxy's DNAT (dnat to / dnat ip to numgen ... map) and SNAT (masquerade
        -- fully-random) are rules whose nat column says so; the hook tells where they run
        r.nat,
        r.nat_args,
        r.set_refs,
        r.comment,
        r.pkts,
        r.bytes,
        r.has_xt,
        c.chain_type,
        c.hook,
        c.priority,
        c.hook is not null as is_base_chain,
        r.format,
        r.bundle_id
    from rules as r
    left join chains as c
        on
            r.bundle_id = c.bundle_id
            and r.source_file = c.source_file
            and r.family = c.family
            and r.table_name = c.table_name
            and r.chain = c.chain
)

select * from final
order by bundle_id, node, source_file, family, table_name, chain, position

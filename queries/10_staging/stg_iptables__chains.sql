-- question: Which iptables chains were declared on each node, with their policies?
-- grain: one row per chain declaration per file
-- inputs: raw_iptables_chains
with source as (
    select * from raw_iptables_chains
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
        policy,
        pkts,
        bytes
    from source
)

select * from final

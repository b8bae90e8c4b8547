-- question: Which iptables rules did each node have, in chain order, tokenised?
-- grain: one row per rule line per file
-- inputs: raw_iptables_rules
with source as (
    select * from raw_iptables_rules
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
        rule_num,
        rule,
        pkts,
        bytes,
        proto,
        src,
        dst,
        in_iface,
        out_iface,
        match_modules,
        matches,
        comment,
        jump_kind,
        target,
        target_args
    from source
)

select * from final

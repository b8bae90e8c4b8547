-- question: Which addresses did each node's interfaces hold?
-- grain: one row per interface address per file
-- inputs: raw_host_addrs
with source as (
    select * from raw_host_addrs
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        format,
        ifindex,
        ifname,
        link_type,
        mac,
        oper_state,
        family,
        local,
        prefixlen,
        scope,
        coalesce(is_secondary, false) as is_secondary,
        label
    from source
)

select * from final

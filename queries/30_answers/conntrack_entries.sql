-- question: What did each node's conntrack table and event stream hold?
-- grain: one row per conntrack record per file (table entry or event)
-- inputs: stg_conntrack__entries
with entries as (
    select * from stg_conntrack__entries
),

final as (
    select
        node,
        source_file,
        source_line,
        snapshot_kind,
        event,
        ts,
        l3proto,
        proto,
        state,
        timeout,
        orig_src,
        orig_dst,
        orig_sport,
        orig_dport,
        reply_src,
        reply_dst,
        reply_sport,
        reply_dport,
        flags,
        mark,
        zone,
        zone_orig,
        zone_reply,
        orig_packets,
        orig_bytes,
        reply_packets,
        reply_bytes,
        orig_icmp_type,
        orig_icmp_code,
        orig_icmp_id,
        ct_id,
        use,
        secctx,
        labels,
        delta_time_s,
        format,
        bundle_id
    from entries
)

select * from final
order by bundle_id, node, source_file, source_line

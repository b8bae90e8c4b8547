-- question: What conntrack entries and events were captured, with tuples kept verbatim?
-- grain: one row per conntrack record (table entry or event line) per file
-- inputs: raw_conntrack_entries
with source as (
    select * from raw_conntrack_entries
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        format,
        case when event is null then 'table' else 'event' end as snapshot_kind,
        event,
        event_ts as ts,
        coalesce(l3proto, case when contains(orig_src, ':') then 'ipv6' else 'ipv4' end)
            as l3proto,
        lower(proto) as proto,
        proto_num,
        timeout_s as timeout,
        state,
        orig_src,
        orig_dst,
        orig_sport,
        orig_dport,
        orig_icmp_type,
        orig_icmp_code,
        orig_icmp_id,
        orig_packets,
        orig_bytes,
        reply_src,
        reply_dst,
        reply_sport,
        reply_dport,
        reply_icmp_type,
        reply_icmp_code,
        reply_icmp_id,
        reply_packets,
        reply_bytes,
        array_to_string(flags, ',') as flags,
        list_contains(flags, 'ASSURED') as is_assured,
        list_contains(flags, 'UNREPLIED') as is_unreplied,
        mark,
        zone,
        orig_zone as zone_orig,
        reply_zone as zone_reply,
        secctx,
        labels,
        use,
        ct_id,
        delta_time_s,
        raw
    from source
)

select * from final

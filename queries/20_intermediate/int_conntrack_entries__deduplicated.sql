-- question: Which distinct connections does each node's conntrack evidence describe, whatever the print format?
-- grain: one row per node and connection (protocol + original tuple + reply tuple)
-- inputs: stg_conntrack__entries
with entries as (
    select * from stg_conntrack__entries
),

keyed as (
    select
        *,
        -- why: -L, -o extended, /proc and -E events of one node print the same kernel entry;
        -- the two tuples identify it (ICMP has no ports: its id/type stand in for them).
        coalesce(orig_sport, orig_icmp_id, -1) as orig_sport_key,
        coalesce(orig_dport, orig_icmp_type, -1) as orig_dport_key,
        coalesce(reply_sport, reply_icmp_id, -1) as reply_sport_key,
        coalesce(reply_dport, reply_icmp_type, -1) as reply_dport_key
    from entries
    where orig_src is not null and reply_src is not null
),

ranked as (
    select
        *,
        row_number() over (
            partition by bundle_id, node, proto, orig_src, orig_dst, orig_sport_key,
                orig_dport_key, reply_src, reply_dst, reply_sport_key, reply_dport_key
            -- the newest word on the state: events in time order, then table dumps
            order by
                case when snapshot_kind = 'event' then 0 else 1 end desc,
                ts desc nulls last,
                source_file desc,
                source_line desc
        ) as recency_rank,
        row_number() over (
            partition by bundle_id, node, proto, orig_src, orig_dst, orig_sport_key,
                orig_dport_key, reply_src, reply_dst, reply_sport_key, reply_dport_key
            order by source_file, source_line
        ) as first_rank
    from keyed
),

grouped as (
    select
        bundle_id,
        node,
        proto,
        orig_src,
        orig_dst,
        orig_sport_key,
        orig_dport_key,
        reply_src,
        reply_dst,
        reply_sport_key,
        reply_dport_key,
        count(*) as n_records,
        string_agg(distinct format, ',' order by format) as evidence,
        count(distinct source_file) as n_files,
        min(ts) as first_event_ts,
        max(ts) as last_event_ts,
        bool_or(is_assured) as is_assured,
        max(orig_packets) as orig_packets,
        max(orig_bytes) as orig_bytes,
        max(reply_packets) as reply_packets,
        max(reply_bytes) as reply_bytes
    from ranked
    group by all
),

latest as (
    select * from ranked where recency_rank = 1
),

first_seen as (
    select * from ranked where first_rank = 1
),

final as (
    select
        g.bundle_id,
        g.node,
        g.proto,
        l.l3proto,
        l.state,
        l.flags,
        l.mark,
        l.zone,
        f.orig_src,
        f.orig_dst,
        f.orig_sport,
        f.orig_dport,
        f.orig_icmp_type,
        f.orig_icmp_code,
        f.orig_icmp_id,
        f.reply_src,
        f.reply_dst,
        f.reply_sport,
        f.reply_dport,
        g.is_assured,
        g.orig_packets,
        g.orig_bytes,
        g.reply_packets,
        g.reply_bytes,
        g.first_event_ts,
        g.last_event_ts,
        g.n_records,
        g.n_files,
        g.evidence,
        f.source_file,
        f.source_line
    from grouped as g
    join latest as l using (
        bundle_id, node, proto, orig_src, orig_dst, orig_sport_key, orig_dport_key,
        reply_src, reply_dst, reply_sport_key, reply_dport_key
    )
    join first_seen as f using (
        bundle_id, node, proto, orig_src, orig_dst, orig_sport_key, orig_dport_key,
        reply_src, reply_dst, reply_sport_key, reply_dport_key
    )
)

select * from final

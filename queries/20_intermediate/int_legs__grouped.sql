-- question: Which legs (one 5-tuple of one connection) did each node see, where, and what was the first packet of each?
-- grain: one row per leg: node, tuple and connection instance (the copies in any.pcap, eth0.pcap and a veth pcap are one leg)
-- inputs: int_legs__sessionized
-- materialized: true
--
-- The first packet's IP ID, length and TCP sequence numbers are what NAT leaves alone, so they
-- are kept to recognise the same packet on the other side of the NAT.
with packets as (
    select
        *,
        -- why: one fixed-size number orders the packets (time, then frame); list or struct
        -- keys make arg_min states that DuckDB cannot spill under a memory limit
        ts_ns::hugeint * 4294967296 + frame_no as packet_order
    from int_legs__sessionized
),

per_file as (
    select
        leg_id,
        source_file,
        min(ts_ns) as first_ns,
        count(*) as packets,
        bool_or(is_any_capture) as is_any_capture,
        list_sort(list_distinct(list(iface))) as ifaces
    from packets
    group by leg_id, source_file
),

-- why: list_sort and arg_min rather than ordered aggregates, which DuckDB cannot spill to disk
-- under a memory limit
copies as (
    select
        leg_id,
        [
            x.copy
            for x in list_sort(
                list(
                    {
                        'sort_key': {'first_ns': first_ns, 'source_file': source_file},
                        'copy': {
                            'source_file': source_file,
                            'ifaces': ifaces,
                            'first_ns': first_ns,
                            'packets': packets
                        }
                    }
                )
            )
        ] as copies,
        count(*) as n_files,
        -- the copy to show: a single-interface capture names its interface plainly
        arg_min(
            {'source_file': source_file, 'first_ns': first_ns},
            {'is_any_capture': is_any_capture, 'first_ns': first_ns, 'source_file': source_file}
        ) as shown
    from per_file
    group by leg_id
),

legs as (
    select
        leg_id,
        any_value(bundle_id) as bundle_id,
        any_value(node) as node,
        any_value(proto) as proto,
        any_value(orig_h) as orig_h,
        any_value(orig_p) as orig_p,
        any_value(resp_h) as resp_h,
        any_value(resp_p) as resp_p,
        min(ts_ns) as first_ns,
        max(ts_ns) as last_ns,
        -- why: NAT rewrites addresses and ports but never the sequence numbers, so the ISN of
        -- the originator's SYN names a TCP connection on both sides of the NAT
        bool_or(is_pure_syn and is_from_orig) as has_syn,
        min(seq) filter (where is_pure_syn and is_from_orig) as isn,
        -- the first packet the node saw (its earliest copy: where it entered the node)
        arg_min(is_from_orig, packet_order) as first_is_from_orig,
        arg_min(ip_id, packet_order) as first_ip_id,
        arg_min(ip_len, packet_order) as first_ip_len,
        arg_min(seq, packet_order) as first_seq_no,
        arg_min(ack, packet_order) as first_ack_no,
        arg_min(flags, packet_order) as first_flags,
        arg_min(ttl, packet_order) as first_ttl,
        -- the first packet back: a tie-breaker when several legs look like the other side
        arg_min(ip_id, packet_order) filter (where not is_from_orig) as reply_ip_id,
        arg_min(ip_len, packet_order) filter (where not is_from_orig) as reply_ip_len,
        list_sort(list_distinct(list(iface))) as ifaces
    from packets
    group by leg_id
),

final as (
    select
        l.leg_id,
        l.bundle_id,
        l.node,
        l.proto,
        l.orig_h,
        l.orig_p,
        l.resp_h,
        l.resp_p,
        l.has_syn,
        l.isn,
        l.first_ns,
        l.last_ns,
        l.first_is_from_orig,
        l.first_ip_id,
        l.first_ip_len,
        l.first_seq_no,
        l.first_ack_no,
        l.first_flags,
        l.first_ttl,
        l.reply_ip_id,
        l.reply_ip_len,
        l.ifaces,
        c.shown.source_file as source_file,
        c.shown.first_ns as source_first_ns,
        c.copies,
        c.n_files
    from legs as l
    inner join copies as c using (leg_id)
)

select * from final

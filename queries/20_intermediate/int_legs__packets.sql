-- question: Which distinct packets did each node see on each leg, with the copies from several capture files of the node merged?
-- grain: one row per leg and distinct packet; the copies of one packet on one node (any.pcap and the interface's pcap, or the way in and the way out) are one row
-- inputs: int_legs__sessionized
with packets as (
    select
        *,
        hash(leg_id, is_from_orig, ip_id, ip_len, seq, ack, flags) as packet_key
    from int_legs__sessionized
),

-- why: routing changes the TTL and NAT the addresses, ports and checksums, but none of them
-- changes the IP ID, the IP length or the TCP sequence and acknowledgement numbers: copies of
-- one packet agree on all of them. A copy more than 200 ms after the previous one is another
-- transmission (a resent packet with the same IP ID, e.g. 0 on a DF-flagged SYN-ACK).
numbered as (
    select
        *,
        coalesce(ts_ns - lag(ts_ns) over w > 200000000, true) as is_new_packet
    from packets
    window w as (
        partition by packet_key
        order by ts_ns, source_file, frame_no
    )
),

transmissions as (
    select
        *,
        sum(is_new_packet::integer) over (
            partition by packet_key
            order by ts_ns, source_file, frame_no
            rows between unbounded preceding and current row
        ) as transmission_no
    from numbered
),

final as (
    select
        leg_id,
        bundle_id,
        node,
        proto,
        is_from_orig,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        ip_id,
        ip_len,
        payload_len,
        seq,
        ack,
        flags,
        transmission_no,
        packet_key,
        min(ts_ns) as first_ns,
        max(ts_ns) as last_ns,
        min(ttl) as min_ttl,
        max(ttl) as max_ttl,
        count(*) as n_copies,
        list_sort(list_distinct(list(iface))) as ifaces
    from transmissions
    group by all
)

select * from final

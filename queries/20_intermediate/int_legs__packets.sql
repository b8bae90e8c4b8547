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
-- Most keys are seen once (one capture file per node), or all their copies within 200 ms:
-- those need no ordered window, and a key seen once needs no grouping either.
key_spans as (
    select
        packet_key,
        count(*) as n_rows,
        max(ts_ns) - min(ts_ns) <= 200000000 as is_one_transmission
    from packets
    group by packet_key
),

spanned as (
    select
        p.*,
        s.n_rows,
        s.is_one_transmission
    from packets as p
    inner join key_spans as s using (packet_key)
),

numbered as (
    select
        *,
        coalesce(ts_ns - lag(ts_ns) over w > 200000000, true) as is_new_packet
    from spanned
    where not is_one_transmission
    window w as (
        partition by packet_key
        order by ts_ns, source_file, frame_no
    )
),

copies as (
    select
        * exclude (n_rows, is_one_transmission, is_new_packet),
        sum(is_new_packet::integer) over (
            partition by packet_key
            order by ts_ns, source_file, frame_no
            rows between unbounded preceding and current row
        )::bigint as transmission_no
    from numbered
    union all
    select
        * exclude (n_rows, is_one_transmission),
        1::bigint as transmission_no
    from spanned
    where is_one_transmission and n_rows > 1
),

-- why: leg_id and the direction determine the node, protocol, addresses and ports; they are
-- carried with any_value rather than grouped on (grouping on the strings is the slow part)
merged as (
    select
        leg_id,
        any_value(bundle_id) as bundle_id,
        any_value(node) as node,
        any_value(proto) as proto,
        is_from_orig,
        any_value(src_ip) as src_ip,
        any_value(src_port) as src_port,
        any_value(dst_ip) as dst_ip,
        any_value(dst_port) as dst_port,
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
    from copies
    group by leg_id, is_from_orig, ip_id, ip_len, payload_len, seq, ack, flags, transmission_no,
        packet_key
),

single as (
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
        1::bigint as transmission_no,
        packet_key,
        ts_ns as first_ns,
        ts_ns as last_ns,
        ttl as min_ttl,
        ttl as max_ttl,
        1::bigint as n_copies,
        case when iface is null then []::varchar[] else [iface] end as ifaces
    from spanned
    where n_rows = 1
),

final as (
    select * from merged
    union all by name
    select * from single
)

select * from final

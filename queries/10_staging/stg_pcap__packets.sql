-- question: What did each captured packet carry, with TCP flags split out and times as numbers?
-- grain: one row per captured frame (inner VXLAN/Geneve packets are rows of their own)
-- inputs: raw_packets
with source as (
    select * from raw_packets
),

final as (
    select
        bundle_id,
        node,
        source_file,
        frame_no,
        ts,
        epoch_ns(ts) as ts_ns,
        iface,
        direction,
        link_type,
        ip_version,
        src_ip,
        dst_ip,
        lower(proto) as proto,
        proto_num::integer as proto_num,
        src_port,
        dst_port,
        tcp_flags,
        tcp_flags_bits::integer as tcp_flags_bits,
        (tcp_flags_bits & 1) <> 0 as is_fin,
        (tcp_flags_bits & 2) <> 0 as is_syn,
        (tcp_flags_bits & 4) <> 0 as is_rst,
        (tcp_flags_bits & 8) <> 0 as is_psh,
        (tcp_flags_bits & 16) <> 0 as is_ack,
        (tcp_flags_bits & 32) <> 0 as is_urg,
        seq,
        ack,
        "window",
        ip_id,
        ttl,
        ip_len,
        coalesce(payload_len, 0) as payload_len,
        frame_len,
        caplen,
        is_truncated,
        is_fragment,
        icmp_type::integer as icmp_type,
        icmp_code::integer as icmp_code,
        vlan,
        outer_frame_no,
        outer_frame_no is not null as is_inner
    from source
)

select * from final

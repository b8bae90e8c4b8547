-- question: What did each captured packet carry, decoded like tshark?
-- grain: one row per captured frame (inner VXLAN/Geneve packets are rows of their own)
-- inputs: stg_pcap__packets
--
-- Read straight from the captures' packets.parquet files in the data directory (docs/storage.md):
-- the packets are written once, when their capture is loaded, and never copied into the database.
with packets as (
    select * from stg_pcap__packets
),

final as (
    select
        bundle_id,
        node,
        source_file,
        frame_no,
        ts,
        iface,
        direction,
        link_type,
        ip_version,
        src_ip,
        dst_ip,
        proto,
        src_port,
        dst_port,
        tcp_flags,
        seq,
        ack,
        "window",
        ip_id,
        ttl,
        ip_len,
        payload_len,
        frame_len,
        caplen,
        is_truncated,
        icmp_type,
        icmp_code,
        vlan,
        is_fragment,
        is_inner,
        outer_frame_no
    from packets
)

select * from final

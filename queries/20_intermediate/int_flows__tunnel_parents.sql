-- question: Which outer connections (VXLAN, Geneve) carried each connection seen inside a tunnel, as Zeek's conn.log `tunnel_parents` lists them?
-- grain: one row per connection per capture file that was seen inside a tunnel
-- inputs: stg_pcap__packets, stg_pcap__flows
--
-- An inner packet is a row of its own with the frame number of the captured frame it came out
-- of; the captured (outer) frame's own row belongs to the tunnel's UDP connection. Nested
-- tunnels name the outermost connection (the capture's own frame) as the parent.
with inner_packets as (
    select bundle_id, node, source_file, frame_no, src_ip, dst_ip, proto, src_port, dst_port
    from stg_pcap__packets
    where is_inner and src_ip is not null
),

outer_packets as (
    select o.bundle_id, o.node, o.source_file, o.frame_no, o.src_ip, o.dst_ip, o.proto,
        o.src_port, o.dst_port
    from stg_pcap__packets as o
    semi join inner_packets as i
        on o.bundle_id = i.bundle_id and o.node = i.node and o.source_file = i.source_file
        and o.frame_no = i.frame_no
    where not o.is_inner
),

flows as (
    select bundle_id, node, source_file, uid, proto, orig_h, orig_p, resp_h, resp_p,
        first_frame_no, last_frame_no
    from stg_pcap__flows
),

-- a packet's connection: same file and addresses (either way round), ports where the
-- protocol has them (ICMP connections are keyed by types), frames spanning the packet's
inner_flows as (
    select i.bundle_id, i.node, i.source_file, i.frame_no, f.uid
    from inner_packets as i
    inner join flows as f
        on i.bundle_id = f.bundle_id and i.node = f.node and i.source_file = f.source_file
        and i.proto = f.proto
        and i.frame_no between f.first_frame_no and f.last_frame_no
        and (
            (i.src_ip = f.orig_h and i.dst_ip = f.resp_h
                and (i.src_port is null or (i.src_port = f.orig_p and i.dst_port = f.resp_p)))
            or (i.src_ip = f.resp_h and i.dst_ip = f.orig_h
                and (i.src_port is null or (i.src_port = f.resp_p and i.dst_port = f.orig_p)))
        )
),

outer_flows as (
    select o.bundle_id, o.node, o.source_file, o.frame_no, f.uid
    from outer_packets as o
    inner join flows as f
        on o.bundle_id = f.bundle_id and o.node = f.node and o.source_file = f.source_file
        and o.proto = f.proto
        and o.frame_no between f.first_frame_no and f.last_frame_no
        and (
            (o.src_ip = f.orig_h and o.dst_ip = f.resp_h
                and (o.src_port is null or (o.src_port = f.orig_p and o.dst_port = f.resp_p)))
            or (o.src_ip = f.resp_h and o.dst_ip = f.orig_h
                and (o.src_port is null or (o.src_port = f.resp_p and o.dst_port = f.orig_p)))
        )
),

final as (
    select
        i.bundle_id,
        i.node,
        i.source_file,
        i.uid,
        list_sort(list_distinct(list(o.uid))) as tunnel_parents
    from inner_flows as i
    inner join outer_flows as o
        on i.bundle_id = o.bundle_id and i.node = o.node and i.source_file = o.source_file
        and i.frame_no = o.frame_no
    group by i.bundle_id, i.node, i.source_file, i.uid
)

select * from final

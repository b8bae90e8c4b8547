-- question: What did each node's conntrack table and event stream hold?
-- grain: one row per conntrack record per file (table entry or event)
-- inputs: stg_conntrack__entries, int_k8s_addresses__named, int_k8s_service_ports__named
with entries as (
    select * from stg_conntrack__entries
),

names as (
    select * from int_k8s_addresses__named
),

service_names as (
    select * from int_k8s_service_ports__named
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
),

-- with kubectl JSON in the bundle: the pod/node behind each address, the Service dialed
named as (
    select
        e.*,
        src.name as orig_src_name,
        coalesce(svc.name, nodeport.name, dst.name) as orig_dst_name,
        backend.name as reply_src_name,
        snat.name as reply_dst_name
    from final as e
    left join names as src on src.bundle_id = e.bundle_id and src.ip = e.orig_src
    left join names as dst on dst.bundle_id = e.bundle_id and dst.ip = e.orig_dst
    left join names as backend on backend.bundle_id = e.bundle_id and backend.ip = e.reply_src
    left join names as snat on snat.bundle_id = e.bundle_id and snat.ip = e.reply_dst
    left join service_names as svc
        on svc.bundle_id = e.bundle_id and svc.proto = e.proto and svc.ip = e.orig_dst
        and svc.port = e.orig_dport
    -- why: a NodePort answers on every node address; a pod's own address is never one
    left join service_names as nodeport
        on nodeport.bundle_id = e.bundle_id and nodeport.proto = e.proto and nodeport.ip = '*'
        and nodeport.port = e.orig_dport and coalesce(dst.name, '') not like 'pod %'
)

select * from named
order by bundle_id, node, source_file, source_line

-- question: Which connections did each node translate, from which client and dialed address to which backend, and from which source did the backend see them?
-- grain: one row per translated connection per node that translated it
-- inputs: int_conntrack_entries__deduplicated, int_k8s_addresses__named, int_k8s_service_ports__named
with connections as (
    select * from int_conntrack_entries__deduplicated
),

names as (
    select * from int_k8s_addresses__named
),

service_names as (
    select * from int_k8s_service_ports__named
),

translated as (
    select
        *,
        -- why: the reply tuple is what the kernel expects back; if its source is not the
        -- original destination, the destination was rewritten (DNAT: VIP/NodePort -> backend).
        (reply_src is distinct from orig_dst or reply_sport is distinct from orig_dport)
            as is_dnat,
        -- why: if the reply goes to someone other than the original source, the source was
        -- rewritten (SNAT/MASQUERADE): reply_dst:reply_dport is what the backend saw.
        (reply_dst is distinct from orig_src or reply_dport is distinct from orig_sport)
            as is_snat
    from connections
),

translated_rows as (
    select
        node,
        proto,
        orig_src as client_ip,
        orig_sport as client_port,
        orig_dst as dialed_ip,
        orig_dport as dialed_port,
        reply_src as backend_ip,
        reply_sport as backend_port,
        reply_dst as snat_ip,
        reply_dport as snat_port,
        case
            when is_dnat and is_snat then 'dnat+snat'
            when is_dnat then 'dnat'
            else 'snat'
        end as nat_kind,
        state,
        flags,
        mark,
        zone,
        orig_icmp_type,
        orig_icmp_id,
        orig_packets,
        orig_bytes,
        reply_packets,
        reply_bytes,
        first_event_ts,
        last_event_ts,
        evidence,
        n_records,
        source_file,
        source_line,
        bundle_id
    from translated
    where is_dnat or is_snat
),

final as (
    select
        n.*,
        client.name as client_name,
        coalesce(svc.name, nodeport.name, dialed.name) as dialed_name,
        backend.name as backend_name,
        snat.name as snat_name
    from translated_rows as n
    left join names as client on client.bundle_id = n.bundle_id and client.ip = n.client_ip
    left join names as dialed on dialed.bundle_id = n.bundle_id and dialed.ip = n.dialed_ip
    left join names as backend on backend.bundle_id = n.bundle_id and backend.ip = n.backend_ip
    left join names as snat on snat.bundle_id = n.bundle_id and snat.ip = n.snat_ip
    left join service_names as svc
        on svc.bundle_id = n.bundle_id and svc.proto = n.proto and svc.ip = n.dialed_ip
        and svc.port = n.dialed_port
    -- why: a NodePort answers on every node address; a pod's own address is never one
    left join service_names as nodeport
        on nodeport.bundle_id = n.bundle_id and nodeport.proto = n.proto and nodeport.ip = '*'
        and nodeport.port = n.dialed_port and coalesce(dialed.name, '') not like 'pod %'
)

select * from final
order by bundle_id, node, proto, dialed_ip, dialed_port, client_ip, client_port, backend_ip, backend_port

-- question: Which Services exposed which cluster IPs, ports and NodePorts?
-- grain: one row per service cluster IP and port per file
-- inputs: raw_k8s_service_ports
with source as (
    select * from raw_k8s_service_ports
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        namespace,
        service,
        service_type,
        cluster_ip,
        port_name,
        lower(proto) as proto,
        port,
        target_port,
        node_port,
        session_affinity,
        external_traffic_policy
    from source
)

select * from final

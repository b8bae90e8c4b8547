-- question: Which Service and port name does a dialed address and port belong to (ClusterIP or NodePort)?
-- grain: one row per bundle, protocol, address kind and port (address '*' for NodePorts)
-- inputs: stg_k8s__service_ports
with ports as (
    select * from stg_k8s__service_ports
),

cluster_ips as (
    select distinct bundle_id, proto, cluster_ip as ip, port,
        'svc ' || namespace || '/' || service || coalesce(':' || port_name, '') as name
    from ports
    where cluster_ip is not null and cluster_ip <> 'None'
),

node_ports as (
    -- why: a NodePort answers on every node address, so it is keyed by port alone
    select distinct bundle_id, proto, '*' as ip, node_port as port,
        'svc ' || namespace || '/' || service || coalesce(':' || port_name, '')
        || ' (NodePort)' as name
    from ports
    where node_port is not null
),

final as (
    select bundle_id, proto, ip, port, string_agg(distinct name, ', ' order by name) as name
    from (select * from cluster_ips union all select * from node_ports)
    group by all
)

select * from final

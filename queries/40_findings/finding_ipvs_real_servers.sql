-- question: Which IPVS real servers at weight 0 still held connections, and where do the real servers differ between nodes or from kubectl's endpoints?
-- grain: one row per bundle, node and real server at weight 0 with connections; per virtual service the nodes disagree on; per node, virtual service and real server missing on one side
-- inputs: stg_ipvs__backends, int_ipvs_services__compared_across_nodes, stg_k8s__service_ports, stg_k8s__endpoints
with backends as (
    select * from stg_ipvs__backends where format in ('list', 'save', 'proc')
),

comparison as (
    select * from int_ipvs_services__compared_across_nodes
),

service_ports as (
    select * from stg_k8s__service_ports
),

endpoints as (
    select * from stg_k8s__endpoints where coalesce(is_ready, true)
),

-- why: weight 0 stops new connections (a drained or terminating endpoint), but the
-- connections it holds stay until they close: users see a removed pod still answering
drained as (
    select * from backends
    where weight = 0 and coalesce(active_conn, 0) + coalesce(inact_conn, 0) > 0
),

-- the Service port behind each virtual service: its cluster IP and port
virtual_services as (
    select distinct
        b.bundle_id, b.node, b.proto, b.vip, b.vport,
        s.namespace, s.service, s.port_name
    from backends as b
    join service_ports as s
        on s.bundle_id = b.bundle_id and s.proto = b.proto and s.cluster_ip = b.vip
        and s.port = b.vport
),

listed as (
    select distinct v.*, b.backend_ip, b.backend_port, b.source_file, b.source_line
    from virtual_services as v
    join backends as b
        on b.bundle_id = v.bundle_id and b.node = v.node and b.proto = v.proto
        and b.vip = v.vip and b.vport = v.vport
),

wanted as (
    select distinct v.*, e.address as backend_ip, e.port as backend_port, e.source_file,
        e.source_line
    from virtual_services as v
    join endpoints as e
        on e.bundle_id = v.bundle_id and e.namespace = v.namespace and e.service = v.service
        and e.proto = v.proto and e.port_name is not distinct from v.port_name
),

not_in_kubectl as (
    select l.* from listed as l
    anti join wanted as w
        on w.bundle_id = l.bundle_id and w.node = l.node and w.proto = l.proto
        and w.vip = l.vip and w.vport = l.vport and w.backend_ip = l.backend_ip
        and w.backend_port = l.backend_port
),

not_in_ipvs as (
    select w.* from wanted as w
    anti join listed as l
        on w.bundle_id = l.bundle_id and w.node = l.node and w.proto = l.proto
        and w.vip = l.vip and w.vport = l.vport and w.backend_ip = l.backend_ip
        and w.backend_port = l.backend_port
),

final as (
    select
        'ipvs_real_servers' as finding,
        'warning' as severity,
        node,
        proto || ' ' || vip || ':' || vport || ' -> ' || backend_ip || ':' || backend_port
            as subject,
        null::timestamptz as first_seen,
        null::timestamptz as last_seen,
        (coalesce(active_conn, 0) + coalesce(inact_conn, 0))::bigint as count,
        format(
            'Real server {}:{} of {} {}:{} on {} has weight 0 (drained) but still holds {} '
            || 'active and {} inactive connections: clients keep reaching it.',
            backend_ip, backend_port, proto, vip, vport, node, coalesce(active_conn, 0),
            coalesce(inact_conn, 0)
        ) as summary,
        source_file || ':' || source_line as evidence,
        'Check whether the endpoint is terminating (EndpointSlice serving/terminating), and '
        || 'whether its connections should be cut (ipvsadm --expire-nodest-conn / kube-proxy '
        || 'graceful termination timeout).' as next_step,
        bundle_id
    from drained
    union all
    select
        'ipvs_real_servers' as finding,
        'warning' as severity,
        nodes as node,
        service as subject,
        null::timestamptz as first_seen,
        null::timestamptz as last_seen,
        n_nodes as count,
        format(
            'The nodes ({}) list different schedulers or real servers for IPVS service {}: {} '
            || '/ {}; a connection''s backend depends on the node it enters.',
            nodes, service, schedulers, backend_sets
        ) as summary,
        'ipvs_services where service = ''' || service || '''' as evidence,
        'Compare kube-proxy on these nodes (logs, sync errors, version): one has not applied '
        || 'the latest endpoints.' as next_step,
        bundle_id
    from comparison
    where not nodes_agree and n_nodes > 1
    union all
    select
        'ipvs_real_servers' as finding,
        'warning' as severity,
        node,
        proto || ' ' || vip || ':' || vport || ' -> ' || backend_ip || ':' || backend_port
            as subject,
        null::timestamptz as first_seen,
        null::timestamptz as last_seen,
        1::bigint as count,
        format(
            'IPVS on {} lists real server {}:{} for {}/{} ({}:{}) that kubectl''s endpoints '
            || 'do not: new connections can still be sent to it.',
            node, backend_ip, backend_port, namespace, service, vip, vport
        ) as summary,
        source_file || ':' || source_line as evidence,
        'Check kube-proxy''s sync on this node (logs, `kube_proxy_sync_proxy_rules_*` '
        || 'metrics); it has not removed an endpoint that is gone.' as next_step,
        bundle_id
    from not_in_kubectl
    union all
    select
        'ipvs_real_servers' as finding,
        'warning' as severity,
        node,
        proto || ' ' || vip || ':' || vport || ' -> ' || backend_ip || ':' || backend_port
            as subject,
        null::timestamptz as first_seen,
        null::timestamptz as last_seen,
        1::bigint as count,
        format(
            'kubectl lists endpoint {}:{} of {}/{} that IPVS on {} does not have for {}:{}: '
            || 'this node never sends connections to it.',
            backend_ip, backend_port, namespace, service, node, vip, vport
        ) as summary,
        source_file || ':' || source_line as evidence,
        'Check kube-proxy''s sync on this node; it has not added a new endpoint.' as next_step,
        bundle_id
    from not_in_ipvs
)

select * from final
order by bundle_id, node, subject, summary

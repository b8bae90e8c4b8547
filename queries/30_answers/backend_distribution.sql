-- question: How were the connections to each dialed service spread over its backends, compared with what the rules promise, over all nodes and per node?
-- grain: one row per scope (all nodes, or one node), dialed service (proto, ip, port) and backend
-- inputs: int_nat_translations__counted_by_backend, int_connections__counted_by_backend, stg_ipvs__backends, derived_expected_backends, derived_distribution_tests, int_k8s_addresses__named, int_k8s_service_ports__named
with conntrack_observed as (
    select * from int_nat_translations__counted_by_backend
),

pcap_observed as (
    select * from int_connections__counted_by_backend
),

-- why: conntrack and the packet captures are two independent witnesses of the same DNAT
-- choices; connections counts the conntrack entries, pcap_connections the captured ones
observed as (
    select
        coalesce(c.bundle_id, p.bundle_id) as bundle_id,
        coalesce(c.node, p.node) as node,
        coalesce(c.proto, p.proto) as proto,
        coalesce(c.dialed_ip, p.dialed_ip) as dialed_ip,
        coalesce(c.dialed_port, p.dialed_port) as dialed_port,
        coalesce(c.backend_ip, p.backend_ip) as backend_ip,
        coalesce(c.backend_port, p.backend_port) as backend_port,
        coalesce(c.connections, 0) as connections,
        coalesce(p.pcap_connections, 0) as pcap_connections
    from conntrack_observed as c
    full outer join pcap_observed as p
        on p.bundle_id = c.bundle_id and p.node = c.node and p.proto = c.proto
        and p.dialed_ip = c.dialed_ip and p.dialed_port = c.dialed_port
        and p.backend_ip = c.backend_ip
        and p.backend_port is not distinct from c.backend_port
),

promised as (
    select * from derived_expected_backends
),

tests as (
    select * from derived_distribution_tests
),

ipvs_listed as (
    -- why: a real server IPVS lists for the dialed VIP:port is a backend the scheduler could
    -- pick, so it is shown with 0 connections when none reached it
    select distinct bundle_id, node, proto, vip as dialed_ip, vport as dialed_port,
        backend_ip, backend_port
    from stg_ipvs__backends
    where vport is not null and format in ('list', 'save', 'proc')
),

per_node as (
    select
        coalesce(o.bundle_id, p.bundle_id) as bundle_id,
        coalesce(o.node, p.node) as node,
        coalesce(o.proto, p.proto) as proto,
        coalesce(o.dialed_ip, p.dialed_ip) as dialed_ip,
        coalesce(o.dialed_port, p.dialed_port) as dialed_port,
        coalesce(o.backend_ip, p.backend_ip) as backend_ip,
        coalesce(o.backend_port, p.backend_port) as backend_port,
        coalesce(o.connections, 0) as connections,
        coalesce(o.pcap_connections, 0) as pcap_connections,
        p.expected_share,
        p.expected_connections,
        p.basis,
        p.is_predictable
    from observed as o
    full outer join promised as p
        on o.bundle_id = p.bundle_id and o.node = p.node and o.proto = p.proto
        and o.dialed_ip = p.dialed_ip and o.dialed_port = p.dialed_port
        and o.backend_ip = p.backend_ip
        and o.backend_port is not distinct from p.backend_port
),

with_listed as (
    select
        n.*,
        exists (
            select 1 from ipvs_listed as l
            where l.bundle_id = n.bundle_id and l.node = n.node and l.proto = n.proto
                and l.dialed_ip = n.dialed_ip and l.dialed_port = n.dialed_port
                and l.backend_ip = n.backend_ip and l.backend_port = n.backend_port
        ) as is_ipvs_backend
    from per_node as n
),

scoped as (
    select 'node' as scope, * from with_listed
    union all
    select
        'all' as scope,
        bundle_id,
        '*' as node,
        proto,
        dialed_ip,
        dialed_port,
        backend_ip,
        backend_port,
        sum(connections) as connections,
        sum(pcap_connections) as pcap_connections,
        null as expected_share,
        -- why: each node's connections follow that node's rules, so expected counts add up
        case when bool_and(coalesce(is_predictable, false)) then sum(expected_connections) end
            as expected_connections,
        string_agg(distinct basis, ', ') as basis,
        bool_and(coalesce(is_predictable, false)) as is_predictable,
        bool_or(is_ipvs_backend) as is_ipvs_backend
    from with_listed
    group by all
),

names as (
    select * from int_k8s_addresses__named
),

service_names as (
    select * from int_k8s_service_ports__named
),

services_with_traffic as (
    select distinct bundle_id, proto, dialed_ip, dialed_port from observed
),

final as (
    select
        s.scope,
        s.node,
        s.proto,
        s.dialed_ip,
        s.dialed_port,
        s.backend_ip,
        s.backend_port,
        coalesce(svc.name, nodeport.name) as dialed_name,
        backend.name as backend_name,
        s.connections,
        round(s.connections / nullif(sum(s.connections) over w, 0), 4) as share,
        round(coalesce(
            s.expected_share,
            s.expected_connections / nullif(sum(s.connections) over w, 0)
        ), 4) as expected_share,
        round(s.expected_connections, 3) as expected_connections,
        s.basis,
        s.is_ipvs_backend,
        s.pcap_connections,
        round(s.pcap_connections / nullif(sum(s.pcap_connections) over w, 0), 4) as pcap_share,
        t.chi2,
        t.dof,
        t.p_value,
        t.verdict,
        t.nodes_disagree,
        s.bundle_id
    from scoped as s
    semi join services_with_traffic as v
        on v.bundle_id = s.bundle_id and v.proto = s.proto
        and v.dialed_ip = s.dialed_ip and v.dialed_port = s.dialed_port
    left join tests as t
        on t.bundle_id = s.bundle_id and t.scope = s.scope and t.node = s.node
        and t.proto = s.proto and t.dialed_ip = s.dialed_ip and t.dialed_port = s.dialed_port
    left join names as backend on backend.bundle_id = s.bundle_id and backend.ip = s.backend_ip
    left join service_names as svc
        on svc.bundle_id = s.bundle_id and svc.proto = s.proto and svc.ip = s.dialed_ip
        and svc.port = s.dialed_port
    left join service_names as nodeport
        on nodeport.bundle_id = s.bundle_id and nodeport.proto = s.proto and nodeport.ip = '*'
        and nodeport.port = s.dialed_port
    window w as (partition by s.bundle_id, s.scope, s.node, s.proto, s.dialed_ip, s.dialed_port)
)

select * from final
order by bundle_id, scope, node, proto, dialed_ip, dialed_port, backend_ip, backend_port

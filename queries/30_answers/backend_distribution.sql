-- question: How were the connections to each dialed service spread over its backends, over all nodes and per node?
-- grain: one row per scope (all nodes, or one node), dialed service (proto, ip, port) and backend
-- inputs: nat_translations, stg_ipvs__backends
with translations as (
    select * from nat_translations where nat_kind in ('dnat', 'dnat+snat')
),

ipvs_promised as (
    -- why: a real server listed by IPVS for the dialed VIP:port is a backend the scheduler could
    -- pick, so it appears with 0 connections when none reached it
    select distinct bundle_id, node, proto, vip as dialed_ip, vport as dialed_port,
        backend_ip, backend_port
    from stg_ipvs__backends
    where vport is not null and format in ('list', 'save', 'proc')
),

observed_per_node as (
    select bundle_id, node, proto, dialed_ip, dialed_port, backend_ip, backend_port,
        count(*) as connections
    from translations
    group by all
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
        p.backend_ip is not null as is_ipvs_backend
    from observed_per_node as o
    full outer join ipvs_promised as p
        on o.bundle_id = p.bundle_id and o.node = p.node and o.proto = p.proto
        and o.dialed_ip = p.dialed_ip and o.dialed_port = p.dialed_port
        and o.backend_ip = p.backend_ip and o.backend_port = p.backend_port
),

services_with_traffic as (
    select distinct bundle_id, proto, dialed_ip, dialed_port from observed_per_node
),

scoped as (
    select 'node' as scope, n.* from per_node as n
    union all
    select 'all' as scope, bundle_id, '*' as node, proto, dialed_ip, dialed_port, backend_ip,
        backend_port, sum(connections) as connections, bool_or(is_ipvs_backend)
    from per_node
    group by all
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
        s.connections,
        round(
            s.connections / nullif(sum(s.connections) over (
                partition by s.bundle_id, s.scope, s.node, s.proto, s.dialed_ip, s.dialed_port
            ), 0),
            4
        ) as share,
        s.is_ipvs_backend,
        s.bundle_id
    from scoped as s
    semi join services_with_traffic as t
        on t.bundle_id = s.bundle_id and t.proto = s.proto
        and t.dialed_ip = s.dialed_ip and t.dialed_port = s.dialed_port
)

select * from final
order by bundle_id, scope, node, proto, dialed_ip, dialed_port, backend_ip, backend_port

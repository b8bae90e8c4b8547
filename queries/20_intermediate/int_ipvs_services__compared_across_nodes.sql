-- question: Does every node that lists an IPVS virtual service give it the same scheduler and real servers?
-- grain: one row per virtual service (proto, vip, vport or fwmark)
-- inputs: stg_ipvs__services, stg_ipvs__backends
with services as (
    select * from stg_ipvs__services where format in ('list', 'save', 'proc')
),

backends as (
    select * from stg_ipvs__backends where format in ('list', 'save', 'proc')
),

per_node as (
    select
        s.bundle_id,
        s.node,
        s.service,
        s.proto,
        s.vip,
        s.vport,
        s.fwmark,
        string_agg(distinct s.scheduler || coalesce(' ' || s.flags, ''), ' | ') as scheduler
    from services as s
    group by all
),

node_backends as (
    select
        bundle_id,
        node,
        service,
        -- why: weight is part of the promise (weight 0 = drained), so it is in the signature
        string_agg(
            distinct backend_ip || ':' || coalesce(backend_port::varchar, '?') || ' w'
            || coalesce(weight::varchar, '?') || ' ' || coalesce(forward, '?'),
            ', ' order by backend_ip || ':' || coalesce(backend_port::varchar, '?') || ' w'
            || coalesce(weight::varchar, '?') || ' ' || coalesce(forward, '?')
        ) as backend_set
    from backends
    group by all
),

signatures as (
    select
        p.*,
        coalesce(b.backend_set, '') as backend_set
    from per_node as p
    left join node_backends as b using (bundle_id, node, service)
),

final as (
    select
        bundle_id,
        service,
        any_value(proto) as proto,
        any_value(vip) as vip,
        any_value(vport) as vport,
        any_value(fwmark) as fwmark,
        count(distinct node) as n_nodes,
        string_agg(distinct node, ', ' order by node) as nodes,
        count(distinct scheduler) = 1 and count(distinct backend_set) = 1 as nodes_agree,
        string_agg(distinct scheduler, ' / ') as schedulers,
        string_agg(distinct backend_set, ' / ') as backend_sets
    from signatures
    group by bundle_id, service
)

select * from final

-- question: How many DNATed connections did each node send from each dialed service to each backend?
-- grain: one row per node, dialed service (proto, ip, port) and backend
-- inputs: nat_translations
with translations as (
    select * from nat_translations
),

final as (
    select
        bundle_id,
        node,
        proto,
        dialed_ip,
        dialed_port,
        backend_ip,
        backend_port,
        count(*) as connections
    from translations
    -- why: only DNAT chose a backend; an SNAT-only entry went where the client dialed
    where nat_kind in ('dnat', 'dnat+snat')
    group by all
)

select * from final

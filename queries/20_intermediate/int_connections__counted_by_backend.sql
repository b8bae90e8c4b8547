-- question: How many connections seen in the packet captures did each node DNAT from each dialed service to each backend?
-- grain: one row per DNAT node, dialed service (proto, ip, port) and backend
-- inputs: int_connections__legs
with legs as (
    select * from int_connections__legs
),

per_conn as (
    select
        conn_id,
        any_value(bundle_id) as bundle_id,
        any_value(nat_node) as nat_node,
        any_value(nat_kind) as nat_kind,
        any_value(proto) as proto,
        any_value(dialed_ip) as dialed_ip,
        any_value(dialed_port) as dialed_port,
        any_value(backend_ip) as backend_ip,
        any_value(backend_port) as backend_port,
        any_value(link_status) as link_status,
        bool_or(role = 'pre_nat') as has_pre_leg,
        bool_or(role = 'post_nat') as has_post_leg
    from legs
    group by conn_id
),

final as (
    select
        bundle_id,
        nat_node as node,
        proto,
        dialed_ip,
        dialed_port,
        backend_ip,
        backend_port,
        count(*) as pcap_connections
    from per_conn
    -- why: the packets show the backend choice only when the connection was captured before
    -- and after the DNAT and the two legs were linked (by conntrack or by the packets)
    where link_status = 'linked'
        and nat_kind in ('dnat', 'dnat+snat')
        and has_pre_leg
        and has_post_leg
    group by all
)

select * from final

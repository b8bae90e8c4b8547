-- question: What kind of source did the backend see for each linked connection: none (the client itself), a node IP, a pod gateway, or other?
-- grain: one row per linked connection (the columns of int_connections__linked, plus its SNAT class)
-- inputs: int_connections__linked, derived_snat_decisions, stg_k8s__nodes, stg_host__addrs
--
-- With conntrack, the explain step classifies every translation (pipeline/explain/classify.py,
-- the snat_class of snat_decisions) and that class is used. Without conntrack, the same address rules are applied here in SQL
-- (IPv4 pod CIDRs only).
with linked as (
    select * from int_connections__linked
),

decisions as (
    select * from derived_snat_decisions
),

pod_cidrs as (
    select distinct
        bundle_id,
        node_name,
        pod_cidr,
        split_part(pod_cidr, '/', 1) as net_ip,
        split_part(pod_cidr, '/', 2)::integer as prefix
    from stg_k8s__nodes
    where regexp_full_match(pod_cidr, '\d+\.\d+\.\d+\.\d+/\d+')
),

cidr_ranges as (
    select
        *,
        (
            split_part(net_ip, '.', 1)::bigint * 16777216 + split_part(net_ip, '.', 2)::bigint * 65536
            + split_part(net_ip, '.', 3)::bigint * 256 + split_part(net_ip, '.', 4)::bigint
        ) // (1::bigint << (32 - prefix)) as net_block
    from pod_cidrs
    where prefix between 0 and 32
),

node_addresses as (
    select distinct bundle_id, node, local as ip, ifname
    from stg_host__addrs
    where local is not null
    union
    select distinct bundle_id, node_name as node, address as ip, address_type as ifname
    from stg_k8s__nodes
    where address_type in ('InternalIP', 'ExternalIP') and address is not null
),

addressed as (
    select
        c.*,
        case
            when regexp_full_match(c.snat_ip, '\d+\.\d+\.\d+\.\d+') then
                split_part(c.snat_ip, '.', 1)::bigint * 16777216
                + split_part(c.snat_ip, '.', 2)::bigint * 65536
                + split_part(c.snat_ip, '.', 3)::bigint * 256
                + split_part(c.snat_ip, '.', 4)::bigint
        end as snat_int,
        d.snat_class as decided_class,
        d.snat_class_basis as decided_basis
    from linked as c
    left join decisions as d
        on d.bundle_id = c.bundle_id
        and d.node = c.nat_node
        and d.proto = c.proto
        and d.client_ip = c.client_ip
        and d.client_port = c.client_port
        and d.dialed_ip = c.dialed_ip
        and d.dialed_port = c.dialed_port
        and d.backend_ip = c.backend_ip
        and d.backend_port = c.backend_port
        and d.snat_ip = c.snat_ip
        and d.snat_port = c.snat_port
),

facts as (
    select
        a.*,
        (
            select first(r.pod_cidr || ' (podCIDR of node ' || r.node_name || ')'
                order by r.prefix desc, r.pod_cidr)
            from cidr_ranges as r
            where r.bundle_id = a.bundle_id
                and a.snat_int // (1::bigint << (32 - r.prefix)) = r.net_block
        ) as pod_cidr_match,
        (
            select first(n.node || coalesce(' (' || n.ifname || ')', '')
                order by n.node = a.nat_node desc, n.node, n.ifname)
            from node_addresses as n
            where n.bundle_id = a.bundle_id and n.ip = a.snat_ip
        ) as node_match
    from addressed as a
),

final as (
    select
        * exclude (snat_int, decided_class, decided_basis, pod_cidr_match, node_match),
        coalesce(
            decided_class,
            case
                when snat_ip = client_ip then 'none'
                when pod_cidr_match is not null then 'pod gateway'
                when node_match is not null then 'node IP'
                else 'other'
            end
        ) as snat_class,
        coalesce(
            decided_basis,
            case
                -- why: the backend saw the client's own address: nothing rewrote the source
                when snat_ip = client_ip
                    then 'the backend saw the client''s own address: no SNAT'
                -- why: an address inside a pod CIDR that no pod holds is the node's pod-side
                -- gateway (kindnet ptp, bridge CNIs), which MASQUERADE picks when the route to
                -- the backend leaves through a pod interface (hairpin, local backend)
                when pod_cidr_match is not null
                    then snat_ip || ' is inside the pod CIDR ' || pod_cidr_match
                -- why: MASQUERADE picks the address of the outgoing interface: a node address
                when node_match is not null
                    then snat_ip || ' is an address of node ' || node_match
                else snat_ip || ' is neither the client, a node address nor a pod gateway'
            end
        ) as snat_class_basis,
        decided_class is not null as is_class_from_conntrack
    from facts
)

select * from final

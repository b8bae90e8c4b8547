-- question: Which IPVS virtual services did each node have, and do the nodes agree on them?
-- grain: one row per virtual service line per file
-- inputs: stg_ipvs__services, stg_ipvs__backends, int_ipvs_services__compared_across_nodes
with services as (
    select * from stg_ipvs__services
),

backend_counts as (
    select bundle_id, source_file, service_line, count(*) as n_backends
    from stg_ipvs__backends
    group by all
),

comparison as (
    select * from int_ipvs_services__compared_across_nodes
),

final as (
    select
        s.node,
        s.service,
        s.proto,
        s.vip,
        s.vport,
        s.fwmark,
        s.scheduler,
        s.flags,
        s.persistent_s,
        coalesce(b.n_backends, 0) as n_backends,
        c.n_nodes as nodes_listing,
        c.nodes_agree,
        s.conns,
        s.in_pkts,
        s.out_pkts,
        s.in_bytes,
        s.out_bytes,
        s.cps,
        s.in_pps,
        s.out_pps,
        s.in_bps,
        s.out_bps,
        s.format,
        s.source_file,
        s.source_line,
        s.bundle_id
    from services as s
    left join backend_counts as b
        on b.bundle_id = s.bundle_id
        and b.source_file = s.source_file
        and b.service_line = s.source_line
    left join comparison as c
        on c.bundle_id = s.bundle_id and c.service = s.service
)

select * from final
order by bundle_id, node, source_file, source_line

-- question: Which real servers stood behind each IPVS virtual service on each node, with weights and counters?
-- grain: one row per real-server line per file
-- inputs: stg_ipvs__backends
with backends as (
    select * from stg_ipvs__backends
),

final as (
    select
        node,
        service,
        proto,
        vip,
        vport,
        fwmark,
        backend_ip,
        backend_port,
        forward,
        weight,
        active_conn,
        inact_conn,
        persist_conn,
        conns,
        in_pkts,
        out_pkts,
        in_bytes,
        out_bytes,
        cps,
        in_pps,
        out_pps,
        in_bps,
        out_bps,
        format,
        source_file,
        source_line,
        bundle_id
    from backends
)

select * from final
order by bundle_id, node, source_file, source_line

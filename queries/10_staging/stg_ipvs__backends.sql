-- question: Which real servers did each IPVS virtual service list, with forward method and weight?
-- grain: one row per real-server line per file
-- inputs: raw_ipvs_backends
with source as (
    select * from raw_ipvs_backends
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        service_line,
        format,
        lower(proto) as proto,
        vip,
        vport,
        vport_name,
        fwmark,
        case
            when fwmark is not null then 'FWM ' || fwmark::varchar
            when contains(vip, ':') then upper(proto) || ' [' || vip || ']:' || coalesce(vport::varchar, vport_name, '?')
            else upper(proto) || ' ' || vip || ':' || coalesce(vport::varchar, vport_name, '?')
        end as service,
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
        is_exact
    from source
)

select * from final

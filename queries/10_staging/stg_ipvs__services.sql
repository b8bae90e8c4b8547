-- question: Which IPVS virtual services did each node list, with scheduler and counters?
-- grain: one row per virtual service line per file
-- inputs: raw_ipvs_services
with source as (
    select * from raw_ipvs_services
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
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
        scheduler,
        flags,
        persistent_s,
        netmask,
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

-- question: Which connections were in each node's IPVS connection table?
-- grain: one row per IPVS connection line per file
-- inputs: raw_ipvs_connections
with source as (
    select * from raw_ipvs_connections
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        format,
        lower(proto) as proto,
        expire_s,
        state,
        client_ip,
        client_port,
        vip,
        vport,
        backend_ip,
        backend_port
    from source
)

select * from final

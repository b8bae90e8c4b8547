-- question: Which endpoints stood behind each Service?
-- grain: one row per endpoint address and port per file
-- inputs: raw_k8s_endpoints
with source as (
    select * from raw_k8s_endpoints
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        namespace,
        service,
        slice,
        address,
        port_name,
        lower(proto) as proto,
        port,
        node_name,
        pod,
        is_ready,
        is_serving,
        is_terminating
    from source
)

select * from final

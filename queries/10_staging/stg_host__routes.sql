-- question: Which routes did each node have?
-- grain: one row per route per file
-- inputs: raw_host_routes
with source as (
    select * from raw_host_routes
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        format,
        coalesce(table_name, 'main') as table_name,
        coalesce(route_type, 'unicast') as route_type,
        dst,
        gateway,
        dev,
        protocol,
        scope,
        prefsrc,
        coalesce(metric, 0) as metric
    from source
)

select * from final

-- question: Which kernel settings (sysctl -a, /proc/sys) did each node print?
-- grain: one row per key per file
-- inputs: raw_host_sysctls
with source as (
    select * from raw_host_sysctls
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        format,
        key,
        value,
        value_int
    from source
)

select * from final

-- question: Which conntrack counters (conntrack -S, /proc/net/stat/nf_conntrack) did each node print, per CPU?
-- grain: one row per cpu and counter per file
-- inputs: raw_conntrack_stats
with source as (
    select * from raw_conntrack_stats
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        format,
        cpu,
        counter,
        value
    from source
)

select * from final

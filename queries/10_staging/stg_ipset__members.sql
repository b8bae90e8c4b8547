-- question: Which members did each ipset hold?
-- grain: one row per member per file
-- inputs: raw_ipset_members
with source as (
    select * from raw_ipset_members
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        format,
        set_name,
        member,
        ip,
        ip2,
        proto,
        port,
        extra
    from source
)

select * from final

-- question: Which ipsets did each node list, with type and entry counts?
-- grain: one row per set per file
-- inputs: raw_ipset_sets
with source as (
    select * from raw_ipset_sets
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        format,
        set_name,
        set_type,
        revision,
        header,
        family,
        size_in_memory,
        "references",
        number_of_entries,
        members_listed
    from source
)

select * from final

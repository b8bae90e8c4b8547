-- question: Which nftables sets and maps did each node have, with their types and elements?
-- grain: one row per set or map per file
-- inputs: stg_nft__sets, stg_nft__elements
with sets as (
    select * from stg_nft__sets
),

elements as (
    select
        bundle_id,
        source_file,
        family,
        table_name,
        set_name,
        list(element order by position) as elements
    from stg_nft__elements
    group by all
),

final as (
    select
        s.node,
        s.family,
        s.table_name,
        s.name,
        -- why: kube-proxy's service-ips / service-nodeports are verdict maps (data_type
        -- verdict): their elements say which service chain a VIP or NodePort goes to
        s.kind,
        s.key_type,
        s.data_type,
        coalesce(e.elements, []) as elements,
        s.element_count,
        s.flags,
        s.timeout_s,
        s.comment,
        s.handle,
        s.source_file,
        s.source_line,
        s.format,
        s.bundle_id
    from sets as s
    left join elements as e
        on
            s.bundle_id = e.bundle_id
            and s.source_file = e.source_file
            and s.family = e.family
            and s.table_name = e.table_name
            and s.name = e.set_name
)

select * from final
order by bundle_id, node, source_file, family, table_name, name

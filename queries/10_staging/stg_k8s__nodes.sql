-- question: Which addresses and pod CIDRs did each Kubernetes node have?
-- grain: one row per node address per file
-- inputs: raw_k8s_nodes
with source as (
    select * from raw_k8s_nodes
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        node_name,
        address_type,
        address,
        pod_cidr
    from source
)

select * from final

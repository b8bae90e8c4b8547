-- question: Which pods ran where, with which IPs?
-- grain: one row per pod IP per file
-- inputs: raw_k8s_pods
with source as (
    select * from raw_k8s_pods
),

final as (
    select
        bundle_id,
        node,
        source_file,
        source_line,
        namespace,
        pod,
        node_name,
        pod_ip,
        host_ip,
        phase,
        labels_json
    from source
)

select * from final

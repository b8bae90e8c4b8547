-- question: Which Kubernetes object (pod, node) does each IP address belong to?
-- grain: one row per bundle and IP address
-- inputs: stg_k8s__pods, stg_k8s__nodes
with pods as (
    select distinct bundle_id, pod_ip as ip, namespace || '/' || pod as name, 'pod' as kind
    from stg_k8s__pods
    where pod_ip is not null
),

nodes as (
    select distinct bundle_id, address as ip, node_name as name, 'node' as kind
    from stg_k8s__nodes
    where address_type in ('InternalIP', 'ExternalIP') and address is not null
),

named as (
    select * from pods
    union all
    select * from nodes
),

final as (
    select
        bundle_id,
        ip,
        -- why: a hostNetwork pod shares its node's IP, so one address can carry several names
        string_agg(distinct kind || ' ' || name, ', ' order by kind || ' ' || name) as name
    from named
    group by bundle_id, ip
)

select * from final

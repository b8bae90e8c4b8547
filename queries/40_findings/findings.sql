-- question: Which known problems (stale conntrack, conntrack drops, SNAT clashes, lost client addresses, hairpins, IPVS drift, unserved NodePorts, skew) do the inputs show?
-- grain: one row per detected problem (a row of one finding_<code> view)
-- inputs: finding_stale_udp_conntrack, finding_conntrack_insert_failures, finding_conntrack_table_near_full, finding_snat_port_collision, finding_client_source_lost, finding_hairpin, finding_ipvs_real_servers, finding_nodeport_not_served, finding_distribution_skew
with all_findings as (
    select * from finding_stale_udp_conntrack
    union all by name
    select * from finding_conntrack_insert_failures
    union all by name
    select * from finding_conntrack_table_near_full
    union all by name
    select * from finding_snat_port_collision
    union all by name
    select * from finding_client_source_lost
    union all by name
    select * from finding_hairpin
    union all by name
    select * from finding_ipvs_real_servers
    union all by name
    select * from finding_nodeport_not_served
    union all by name
    select * from finding_distribution_skew
),

final as (
    select
        finding,
        severity,
        node,
        subject,
        first_seen::timestamptz as first_seen,
        last_seen::timestamptz as last_seen,
        count::bigint as count,
        summary,
        evidence,
        next_step,
        bundle_id,
        case severity when 'error' then 0 when 'warning' then 1 else 2 end as severity_rank
    from all_findings
)

select * from final
order by bundle_id, severity_rank, finding, node, subject, summary

-- question: For which dialed services does backend_distribution's verdict reject the split the rules promise, with p below 0.0001?
-- grain: one row per bundle, scope (all nodes or one node) and dialed service
-- inputs: backend_distribution
with distribution as (
    select * from backend_distribution
),

rejected as (
    select
        bundle_id,
        scope,
        node,
        proto,
        dialed_ip,
        dialed_port,
        any_value(dialed_name) as dialed_name,
        any_value(verdict) as verdict,
        any_value(p_value) as p_value,
        sum(connections) as connections,
        string_agg(
            backend_ip || ':' || coalesce(backend_port::varchar, '?') || ' ' || connections
            || ' (expected ' || coalesce(expected_connections::varchar, '?') || ')',
            ', ' order by backend_ip, backend_port
        ) as split
    from distribution
    -- why: the verdict says "deviates" below p = 0.05, which iptables' random split reaches
    -- by chance in one of twenty small samples, and a report tests many services and nodes;
    -- a finding needs p < 0.0001 (or connections to a backend the rules never name)
    where (verdict like 'deviates from the promised split%' and p_value < 0.0001)
        or verdict like 'connections reached backends the rules give no share%'
    group by all
),

final as (
    select
        'distribution_skew' as finding,
        'warning' as severity,
        node,
        coalesce(dialed_name || ' ', '') || dialed_ip || ':' || dialed_port || '/' || proto
            as subject,
        null::timestamptz as first_seen,
        null::timestamptz as last_seen,
        connections::bigint as count,
        format(
            'The {} connections to {}:{} ({}) were not spread as the rules promise: {}.',
            connections, dialed_ip, dialed_port,
            case when scope = 'all' then 'all nodes' else 'on ' || node end, verdict
        ) as summary,
        'backend_distribution: ' || split as evidence,
        'Compare the promise (rules, IPVS weights) with what happened: stale conntrack '
        || 'entries, session affinity, long-lived connections, or nodes that disagree send '
        || 'connections elsewhere.' as next_step,
        bundle_id
    from rejected
)

select * from final
order by bundle_id, node, subject

-- question: Which nodes' conntrack tables were near full (nf_conntrack_count against nf_conntrack_max), and which protocol and state dominated them?
-- grain: one row per bundle, node and sysctl file whose count is at least 90% of the maximum
-- inputs: stg_host__sysctls, stg_conntrack__entries
with sysctls as (
    select * from stg_host__sysctls
),

entries as (
    select * from stg_conntrack__entries where snapshot_kind = 'table'
),

settings as (
    select
        bundle_id,
        node,
        source_file,
        max(value_int) filter (where key = 'net.netfilter.nf_conntrack_count') as ct_count,
        -- why: net.nf_conntrack_max is the older alias of the same setting
        coalesce(
            max(value_int) filter (where key = 'net.netfilter.nf_conntrack_max'),
            max(value_int) filter (where key = 'net.nf_conntrack_max')
        ) as ct_max,
        min(source_line) filter (where key = 'net.netfilter.nf_conntrack_count') as count_line,
        min(source_line) filter (
            where key in ('net.netfilter.nf_conntrack_max', 'net.nf_conntrack_max')
        ) as max_line
    from sysctls
    group by all
),

near_full as (
    select * from settings
    where ct_count is not null and ct_max > 0 and ct_count >= 0.9 * ct_max
),

-- what fills the node's table: the largest table dump, by protocol and state
dump_sizes as (
    select bundle_id, node, source_file, count(*) as n
    from entries
    group by all
),

largest_dump as (
    select bundle_id, node, arg_max(source_file, n) as source_file, max(n) as n
    from dump_sizes
    group by all
),

classes as (
    select
        e.bundle_id,
        e.node,
        e.proto || ' ' || coalesce(e.state, case when e.is_unreplied then 'UNREPLIED' end, '-')
            as class,
        count(*) as n,
        max(e.timeout) as max_timeout,
        any_value(d.n) as dump_n
    from entries as e
    join largest_dump as d
        on d.bundle_id = e.bundle_id and d.node = e.node and d.source_file = e.source_file
    group by all
),

dominant as (
    select
        bundle_id,
        node,
        arg_max(class, n) as class,
        max(n) as n,
        arg_max(max_timeout, n) as max_timeout,
        any_value(dump_n) as dump_n
    from classes
    group by all
),

final as (
    select
        'conntrack_table_near_full' as finding,
        case when f.ct_count >= f.ct_max then 'error' else 'warning' end as severity,
        f.node,
        'nf_conntrack_count / nf_conntrack_max' as subject,
        null::timestamptz as first_seen,
        null::timestamptz as last_seen,
        f.ct_count::bigint as count,
        format(
            'The conntrack table on {} held {} of at most {} entries ({}%){}: new connections '
            || 'are dropped (or older ones evicted) once it is full.',
            f.node, f.ct_count, f.ct_max, round(100.0 * f.ct_count / f.ct_max, 1),
            case
                when d.class is not null then format(
                    '; {} of the {} entries dumped are {} (timeout up to {} s)',
                    d.n, d.dump_n, d.class, coalesce(d.max_timeout::varchar, '?')
                )
                else ''
            end
        ) as summary,
        f.source_file || ':' || f.count_line || ', ' || f.source_file || ':' || f.max_line
            as evidence,
        'Raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets), or shorten the '
        || 'timeout of the state that dominates the table (e.g. nf_conntrack_udp_timeout, '
        || 'nf_conntrack_tcp_timeout_time_wait); find who opens that many connections.'
            as next_step,
        f.bundle_id
    from near_full as f
    left join dominant as d on d.bundle_id = f.bundle_id and d.node = f.node
)

select * from final
order by bundle_id, node, evidence

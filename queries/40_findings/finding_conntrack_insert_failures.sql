-- question: Which nodes' conntrack counters (conntrack -S, per CPU summed) show insert failures, drops, early drops or invalid packets, and did they rise between two snapshots?
-- grain: one row per bundle, node and counter (insert_failed, drop, early_drop, invalid) that is non-zero
-- inputs: stg_conntrack__stats
--
-- kubernetes#56903: insert_failed rising is the race of two UDP packets of one socket (A and
-- AAAA lookups) on two CPUs; one is dropped and the resolver waits 5 s before it retries.
with stats as (
    select * from stg_conntrack__stats
    where counter in ('insert_failed', 'drop', 'early_drop', 'invalid')
),

-- why: a file may hold several `conntrack -S` outputs one after the other; a new snapshot
-- starts where the cpu number does not grow
numbered as (
    select
        *,
        case
            when cpu <= lag(cpu) over (
                partition by bundle_id, node, source_file, counter order by source_line
            ) then 1
            else 0
        end as starts_snapshot
    from stats
),

snapshots as (
    select
        *,
        sum(starts_snapshot) over (
            partition by bundle_id, node, source_file, counter order by source_line
            rows between unbounded preceding and current row
        ) as snapshot_no
    from numbered
),

summed as (
    select
        bundle_id,
        node,
        source_file,
        snapshot_no,
        counter,
        sum(value) as total,
        count(*) as n_cpus,
        min(source_line) as first_line,
        max(source_line) as last_line
    from snapshots
    group by all
),

ordered as (
    select
        *,
        row_number() over w as snapshot_rank,
        first_value(total) over w as first_total,
        count(*) over (partition by bundle_id, node, counter) as n_snapshots
    from summed
    window w as (partition by bundle_id, node, counter order by source_file, snapshot_no)
),

per_counter as (
    select
        bundle_id,
        node,
        counter,
        max(n_snapshots) as n_snapshots,
        arg_max(total, snapshot_rank) as last_total,
        min(first_total) as first_total,
        arg_max(source_file || ':' || first_line || '-' || last_line, snapshot_rank) as last_place,
        arg_min(source_file || ':' || first_line || '-' || last_line, snapshot_rank)
            as first_place,
        arg_max(n_cpus, snapshot_rank) as n_cpus
    from ordered
    group by all
),

judged as (
    select
        *,
        n_snapshots > 1 and last_total > first_total as is_rising
    from per_counter
    where last_total > 0
),

final as (
    select
        'conntrack_insert_failures' as finding,
        case
            when counter in ('insert_failed', 'drop', 'early_drop') and is_rising then 'error'
            when counter in ('insert_failed', 'drop', 'early_drop') then 'warning'
            when is_rising then 'warning'
            else 'info'
        end as severity,
        node,
        'conntrack -S ' || counter as subject,
        null::timestamptz as first_seen,
        null::timestamptz as last_seen,
        (case when is_rising then last_total - first_total else last_total end)::bigint
            as count,
        format(
            'conntrack on {} counted {} {} (summed over {} CPUs){}: {}',
            node, last_total, counter, n_cpus,
            case
                when is_rising then format(
                    ', up {} since the first of {} snapshots', last_total - first_total,
                    n_snapshots
                )
                else ''
            end,
            case counter
                when 'insert_failed' then 'new connections were dropped because their tuple '
                    || 'clashed with an entry inserted at the same moment; with UDP DNS this '
                    || 'is the lost reply and the 5 s lookup.'
                when 'drop' then 'packets were dropped because the table was full or a new '
                    || 'entry could not be added.'
                when 'early_drop' then 'the table was full and entries were evicted early to '
                    || 'make room.'
                else 'packets conntrack could not track (out of window, bad state) were '
                    || 'marked INVALID; rules that drop INVALID turn them into resets and '
                    || 'stalls.'
            end
        ) as summary,
        case
            when is_rising then first_place || ' (' || first_total || ') -> ' || last_place
                || ' (' || last_total || ')'
            else last_place
        end as evidence,
        case counter
            when 'insert_failed' then 'Look for parallel UDP queries from one socket (glibc '
                || 'A/AAAA): use `options single-request-reopen` or NodeLocal DNSCache, and '
                || 'for SNAT clashes add --random-fully to MASQUERADE.'
            when 'drop' then 'Compare nf_conntrack_count with nf_conntrack_max (sysctl -a) '
                || 'and raise the maximum or shorten the timeouts that fill the table.'
            when 'early_drop' then 'Raise nf_conntrack_max (and nf_conntrack_buckets) or '
                || 'shorten the timeouts of the states that dominate the table.'
            else 'Check which packets are invalid (sysctl net.netfilter.nf_conntrack_log_invalid'
                || '=6, then the kernel log); consider nf_conntrack_tcp_be_liberal.'
        end as next_step,
        bundle_id
    from judged
)

select * from final
order by bundle_id, node, subject

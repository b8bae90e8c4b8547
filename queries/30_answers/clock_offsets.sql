-- question: How far apart are the clocks of each pair of nodes, estimated from packets both nodes captured?
-- grain: one row per bundle and pair of nodes (node_a < node_b) that captured at least one common packet
-- inputs: int_clock_offsets__packet_deltas
--
-- offset_ms is node_b's clock minus node_a's clock: subtract it from a node_b timestamp to put
-- it on node_a's clock. With packets both ways the one-way delay cancels out (as in NTP):
-- offset = (median(a->b) + median(b->a)) / 2, delay = (median(a->b) - median(b->a)) / 2.
with deltas as (
    select * from int_clock_offsets__packet_deltas
),

medians as (
    select
        bundle_id,
        node_a,
        node_b,
        median(delta_ns) filter (where direction = 'a_to_b') as a_to_b_ns,
        median(delta_ns) filter (where direction = 'b_to_a') as b_to_a_ns,
        count(*) filter (where direction = 'a_to_b') as packets_a_to_b,
        count(*) filter (where direction = 'b_to_a') as packets_b_to_a
    from deltas
    group by bundle_id, node_a, node_b
),

residuals as (
    select
        d.bundle_id,
        d.node_a,
        d.node_b,
        d.delta_ns - case d.direction when 'a_to_b' then m.a_to_b_ns else m.b_to_a_ns end
            as residual_ns
    from deltas as d
    inner join medians as m using (bundle_id, node_a, node_b)
),

spread as (
    select
        bundle_id,
        node_a,
        node_b,
        quantile_cont(residual_ns, 0.75) - quantile_cont(residual_ns, 0.25) as iqr_ns,
        max(abs(residual_ns)) as max_residual_ns
    from residuals
    group by bundle_id, node_a, node_b
),

final as (
    select
        m.bundle_id,
        m.node_a,
        m.node_b,
        round(
            case
                when m.a_to_b_ns is not null and m.b_to_a_ns is not null
                    then (m.a_to_b_ns + m.b_to_a_ns) / 2
                else coalesce(m.a_to_b_ns, m.b_to_a_ns)
            end / 1e6,
            3
        ) as offset_ms,
        round(
            case
                when m.a_to_b_ns is not null and m.b_to_a_ns is not null
                    then (m.a_to_b_ns - m.b_to_a_ns) / 2
            end / 1e6,
            3
        ) as one_way_delay_ms,
        m.packets_a_to_b + m.packets_b_to_a as packets_used,
        m.packets_a_to_b,
        m.packets_b_to_a,
        round(s.iqr_ns / 1e6, 3) as spread_ms,
        round(s.max_residual_ns / 1e6, 3) as max_residual_ms,
        case
            when m.a_to_b_ns is not null and m.b_to_a_ns is not null
                then 'packets both ways: the one-way delay cancels out'
            -- why: with packets one way only the delay cannot be told from the offset
            else 'packets one way only: the offset includes the one-way delay'
        end as basis
    from medians as m
    inner join spread as s using (bundle_id, node_a, node_b)
)

select * from final
order by bundle_id, node_a, node_b

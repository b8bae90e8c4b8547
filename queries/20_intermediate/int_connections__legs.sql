-- question: Which captured legs belong to which end-to-end connection, and which legs could not be linked (unmatched) or not uniquely (ambiguous)?
-- grain: one row per connection and leg; a linked connection without a captured leg has one row with no leg; a leg no linked connection claims is a connection of its own, grouped across nodes by tuple and first packet
-- inputs: int_connections__classified, int_legs__paired
-- materialized: true
with linked as materialized (
    select * from int_connections__classified
),

legs as materialized (
    select * from int_legs__paired
),

tuple_matches as (
    select
        c.conn_id,
        c.nat_node,
        c.anchor_ns,
        c.first_event_ns,
        c.last_event_ns,
        c.isn as conn_isn,
        c.first_ip_id as conn_ip_id,
        c.first_ip_len as conn_ip_len,
        case
            when l.orig_h = c.client_ip and l.orig_p = c.client_port
                and l.resp_h = c.dialed_ip and l.resp_p = c.dialed_port
                then 'pre_nat'
            else 'post_nat'
        end as role,
        l.*
    from linked as c
    inner join legs as l
        on l.bundle_id = c.bundle_id
        and l.proto = c.proto
        and (
            (l.orig_h = c.client_ip and l.orig_p = c.client_port
                and l.resp_h = c.dialed_ip and l.resp_p = c.dialed_port)
            or (l.orig_h = c.snat_ip and l.orig_p = c.snat_port
                and l.resp_h = c.backend_ip and l.resp_p = c.backend_port)
        )
),

-- why: with a pcap pairing the connection has an identity every copy of its legs shares on
-- every node: the ISN (TCP) or the first datagram's IP ID and length (UDP); a leg of the
-- same tuple with another identity is another connection that reused the ports. Each node
-- stamps with its own clock (see clock_offsets): 5 minutes tolerates skewed clocks, and a
-- tuple and identity are practically never reused that soon.
by_identity as (
    select *
    from tuple_matches
    where (conn_isn is not null or conn_ip_id is not null)
        and (
            (proto = 'tcp' and isn = conn_isn)
            or (proto = 'udp' and first_ip_id = conn_ip_id and first_ip_len = conn_ip_len)
        )
        and abs(first_ns - anchor_ns) <= 300000000000
),

-- why: conntrack alone gives the tuples; with -E timestamps a leg must start while the entry
-- lived (60 s slack), and the legs must agree on one identity, or none is attached
by_conntrack_time as (
    select
        *,
        count(
            distinct coalesce(isn::varchar, first_ip_id::varchar || '/' || first_ip_len::varchar)
        ) over (partition by conn_id) as n_identities
    from tuple_matches
    where conn_isn is null and conn_ip_id is null
        and (
            first_event_ns is null
            or first_ns between first_event_ns - 60000000000
            and coalesce(last_event_ns, first_event_ns) + 60000000000
        )
),

attached as (
    select conn_id, role, node = nat_node as is_on_nat_node, leg_id from by_identity
    union all
    select conn_id, role, node = nat_node as is_on_nat_node, leg_id
    from by_conntrack_time
    where n_identities = 1
),

ambiguous_legs as (
    select leg_id, ambiguous_rules as match_rule from legs where is_ambiguous
    union all
    select leg_id, 'conntrack tuple' as match_rule from by_conntrack_time where n_identities > 1
),

unclaimed as (
    select
        l.*,
        a.rules as candidate_rules,
        case
            when l.has_syn then 'isn ' || l.isn
            when l.proto = 'udp' then 'ip id ' || l.first_ip_id || ' len ' || l.first_ip_len
            else 'first packet seq ' || l.first_seq_no || ' ack ' || l.first_ack_no
        end as identity
    from legs as l
    left join (
        select leg_id, string_agg(distinct match_rule, ', ' order by match_rule) as rules
        from ambiguous_legs
        group by leg_id
    ) as a using (leg_id)
    anti join attached as t on t.leg_id = l.leg_id
),

-- unclaimed legs of one tuple and identity seen on several nodes are one connection
unclaimed_grouped as (
    select
        *,
        sum(is_new::integer) over (
            partition by bundle_id, proto, orig_h, orig_p, resp_h, resp_p, identity
            order by first_ns, node
            rows between unbounded preceding and current row
        ) as group_no
    from (
        select
            *,
            coalesce(
                first_ns > lag(first_ns) over (
                    partition by bundle_id, proto, orig_h, orig_p, resp_h, resp_p, identity
                    order by first_ns, node
                ) + 300000000000,
                true
            ) as is_new
        from unclaimed
    )
),

unclaimed_rows as (
    select
        md5(
            concat_ws(
                '|', bundle_id, proto, orig_h, orig_p, resp_h, resp_p, identity, group_no
            )
        ) as conn_id,
        bundle_id,
        proto,
        case when bool_or(candidate_rules is not null) over w then 'ambiguous' else 'unmatched' end
            as link_status,
        string_agg(distinct candidate_rules, ', ') over w as candidate_rules,
        'unpaired' as role,
        false as is_on_nat_node,
        leg_id
    from unclaimed_grouped
    window w as (partition by bundle_id, proto, orig_h, orig_p, resp_h, resp_p, identity, group_no)
),

linked_rows as (
    select
        c.conn_id,
        c.bundle_id,
        c.proto,
        'linked' as link_status,
        null::varchar as candidate_rules,
        a.role,
        a.is_on_nat_node,
        a.leg_id
    from linked as c
    left join attached as a using (conn_id)
),

final as (
    select
        r.conn_id,
        r.link_status,
        r.candidate_rules,
        r.role,
        r.is_on_nat_node,
        c.* exclude (conn_id, bundle_id, proto, isn, first_ip_id, first_ip_len, anchor_ns,
            pre_leg_id, post_leg_id),
        l.* exclude (leg_id, bundle_id, proto, pair_role, partner_leg_id, pair_rule, is_ambiguous,
            ambiguous_rules, n_candidates),
        r.leg_id,
        r.proto,
        r.bundle_id
    from (select * from linked_rows union all by name select * from unclaimed_rows) as r
    left join linked as c on c.conn_id = r.conn_id
    left join legs as l on l.leg_id = r.leg_id
)

select * from final

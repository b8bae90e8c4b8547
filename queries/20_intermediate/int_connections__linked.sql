-- question: Which pre-NAT and post-NAT tuples belong to one end-to-end connection, by a conntrack translation, by a unique pairing of captured legs, or both?
-- grain: one row per linked connection: a pre-NAT tuple (client -> dialed) and a post-NAT tuple (SNAT source -> backend) on the node that translated it
-- inputs: nat_translations, int_legs__paired
with translations as (
    select
        bundle_id,
        node,
        proto,
        client_ip,
        client_port,
        dialed_ip,
        dialed_port,
        backend_ip,
        backend_port,
        snat_ip,
        snat_port,
        nat_kind,
        epoch_ns(first_event_ts) as first_event_ns,
        epoch_ns(last_event_ts) as last_event_ns,
        source_file,
        source_line
    from nat_translations
    where proto in ('tcp', 'udp')
),

legs as materialized (
    select * from int_legs__paired
),

pairs as (
    select
        pre.bundle_id,
        pre.node,
        pre.proto,
        pre.leg_id as pre_leg_id,
        post.leg_id as post_leg_id,
        pre.pair_rule as match_rule,
        pre.orig_h as client_ip,
        pre.orig_p as client_port,
        pre.resp_h as dialed_ip,
        pre.resp_p as dialed_port,
        post.resp_h as backend_ip,
        post.resp_p as backend_port,
        post.orig_h as snat_ip,
        post.orig_p as snat_port,
        pre.first_ns as pre_first_ns,
        pre.isn,
        pre.first_ip_id,
        pre.first_ip_len
    from legs as pre
    inner join legs as post on post.leg_id = pre.partner_leg_id
    where pre.pair_role = 'pre_nat'
),

-- why: conntrack's original tuple is the pre-NAT leg and its reply tuple, mirrored, the
-- post-NAT leg, so a pairing of captured legs on the same node with the same two tuples is the
-- same connection; with -E timestamps the legs must also start while the entry lived
-- (60 s slack: events are stamped when conntrack reads them)
joined as (
    select
        t.bundle_id as ct_bundle_id,
        t.node as ct_node,
        t.source_file as ct_source_file,
        t.source_line as ct_source_line,
        p.pre_leg_id as pp_pre_leg_id,
        p.post_leg_id as pp_post_leg_id
    from translations as t
    inner join pairs as p
        on p.bundle_id = t.bundle_id
        and p.node = t.node
        and p.proto = t.proto
        and p.client_ip = t.client_ip
        and p.client_port = t.client_port
        and p.dialed_ip = t.dialed_ip
        and p.dialed_port = t.dialed_port
        and p.backend_ip = t.backend_ip
        and p.backend_port = t.backend_port
        and p.snat_ip = t.snat_ip
        and p.snat_port = t.snat_port
        and (
            t.first_event_ns is null
            or p.pre_first_ns between t.first_event_ns - 60000000000
            and coalesce(t.last_event_ns, t.first_event_ns) + 60000000000
        )
),

from_conntrack as (
    select
        t.bundle_id,
        t.node as nat_node,
        t.proto,
        t.client_ip,
        t.client_port,
        t.dialed_ip,
        t.dialed_port,
        t.backend_ip,
        t.backend_port,
        t.snat_ip,
        t.snat_port,
        t.nat_kind,
        true as has_conntrack,
        p.pre_leg_id is not null as has_pcap_pair,
        case
            when p.pre_leg_id is not null then 'conntrack tuple + ' || p.match_rule
            else 'conntrack tuple'
        end as match_rule,
        p.pre_leg_id,
        p.post_leg_id,
        coalesce(p.pre_first_ns, t.first_event_ns) as anchor_ns,
        t.first_event_ns,
        t.last_event_ns,
        p.isn,
        p.first_ip_id,
        p.first_ip_len,
        t.source_file as conntrack_source_file,
        t.source_line as conntrack_source_line
    from translations as t
    left join joined as j
        on j.ct_bundle_id = t.bundle_id
        and j.ct_node = t.node
        and j.ct_source_file = t.source_file
        and j.ct_source_line = t.source_line
    left join pairs as p on p.pre_leg_id = j.pp_pre_leg_id and p.post_leg_id = j.pp_post_leg_id
),

from_pcap as (
    select
        p.bundle_id,
        p.node as nat_node,
        p.proto,
        p.client_ip,
        p.client_port,
        p.dialed_ip,
        p.dialed_port,
        p.backend_ip,
        p.backend_port,
        p.snat_ip,
        p.snat_port,
        -- why: the same rule as nat_translations: a changed destination is DNAT, a changed
        -- source is SNAT
        case
            when (p.dialed_ip <> p.backend_ip or p.dialed_port <> p.backend_port)
                and (p.client_ip <> p.snat_ip or p.client_port <> p.snat_port)
                then 'dnat+snat'
            when p.dialed_ip <> p.backend_ip or p.dialed_port <> p.backend_port then 'dnat'
            else 'snat'
        end as nat_kind,
        false as has_conntrack,
        true as has_pcap_pair,
        p.match_rule,
        p.pre_leg_id,
        p.post_leg_id,
        p.pre_first_ns as anchor_ns,
        null::bigint as first_event_ns,
        null::bigint as last_event_ns,
        p.isn,
        p.first_ip_id,
        p.first_ip_len,
        null::varchar as conntrack_source_file,
        null::bigint as conntrack_source_line
    from pairs as p
    anti join joined as j on j.pp_pre_leg_id = p.pre_leg_id and j.pp_post_leg_id = p.post_leg_id
),

unioned as (
    select * from from_conntrack
    union all
    select * from from_pcap
),

final as (
    select
        md5(
            concat_ws(
                '|', bundle_id, nat_node, proto, client_ip, client_port, dialed_ip, dialed_port,
                backend_ip, backend_port, snat_ip, snat_port,
                coalesce(pre_leg_id, conntrack_source_file || ':' || conntrack_source_line)
            )
        ) as conn_id,
        *
    from unioned
)

select * from final

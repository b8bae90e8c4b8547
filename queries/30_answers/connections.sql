-- question: Which end-to-end connections went through NAT, from which client and dialed address to which backend and SNAT source, seen where, and how sure is the link?
-- grain: one row per end-to-end connection, stitched across nodes and capture points; a captured leg that could not be linked (uniquely) is a row of its own (match_status unmatched or ambiguous)
-- inputs: int_connections__counted, flows, stg_k8s__service_ports, int_k8s_addresses__named, int_k8s_service_ports__named
-- materialized: true
--
-- docs/connections.md says which links are exact (conntrack tuples, TCP ISN) and which are
-- heuristics (UDP IP ID + length + time, file names as interface names).
with legs as materialized (
    select * from int_connections__counted
),

flow_keys as (
    select
        bundle_id,
        node,
        source_file,
        proto,
        least(orig_h || '|' || orig_p, resp_h || '|' || resp_p) as end_a,
        greatest(orig_h || '|' || orig_p, resp_h || '|' || resp_p) as end_b,
        epoch_ns(ts) as ts_ns,
        uid,
        community_id
    from flows
    where proto in ('tcp', 'udp')
),

service_ports as (
    select
        bundle_id,
        proto,
        cluster_ip,
        port,
        node_port,
        namespace || '/' || service || coalesce(':' || port_name, '') as service
    from stg_k8s__service_ports
),

names as (
    select * from int_k8s_addresses__named
),

service_names as (
    select * from int_k8s_service_ports__named
),

-- the flow (Zeek uid, community_id) of each leg: the flows row of the leg's shown capture
-- file with the same tuple that started at or before the leg's first packet in that file
flowed_legs as (
    select
        l.*,
        f.uid,
        f.community_id
    from (
        select
            *,
            least(orig_h || '|' || orig_p, resp_h || '|' || resp_p) as end_a,
            greatest(orig_h || '|' || orig_p, resp_h || '|' || resp_p) as end_b
        from legs
    ) as l
    asof left join flow_keys as f
        on f.bundle_id = l.bundle_id
        and f.node = l.node
        and f.source_file = l.source_file
        and f.proto = l.proto
        and f.end_a = l.end_a
        and f.end_b = l.end_b
        and f.ts_ns <= l.source_first_ns
),

-- which leg each connection shows: the earliest (an unlinked leg's own tuple), and per role
-- the translating node's, else the earliest
-- why: numbering the legs once is much cheaper than one ordered aggregate per column
leg_flows as (
    select
        *,
        row_number() over (
            partition by conn_id order by first_ns, node, role, leg_id
        ) as leg_rank,
        row_number() over (
            partition by conn_id, role order by is_on_nat_node desc, first_ns, node, leg_id
        ) as role_rank
    from flowed_legs
),

per_conn as (
    select
        conn_id,
        any_value(bundle_id) as bundle_id,
        any_value(proto) as proto,
        any_value(link_status) as link_status,
        any_value(candidate_rules) as candidate_rules,
        -- a linked connection: its conntrack translation or pcap pairing
        any_value(nat_node) as nat_node,
        any_value(client_ip) as client_ip,
        any_value(client_port) as client_port,
        any_value(dialed_ip) as dialed_ip,
        any_value(dialed_port) as dialed_port,
        any_value(backend_ip) as backend_ip,
        any_value(backend_port) as backend_port,
        any_value(snat_ip) as snat_ip,
        any_value(snat_port) as snat_port,
        any_value(nat_kind) as nat_kind,
        any_value(has_conntrack) as has_conntrack,
        any_value(match_rule) as match_rule,
        any_value(snat_class) as snat_class,
        any_value(snat_class_basis) as snat_class_basis,
        any_value(first_event_ns) as first_event_ns,
        any_value(last_event_ns) as last_event_ns,
        any_value(conntrack_source_file) as conntrack_source_file,
        any_value(conntrack_source_line) as conntrack_source_line,
        any_value(orig_pkts) as orig_pkts,
        any_value(orig_ip_bytes) as orig_ip_bytes,
        any_value(orig_payload_bytes) as orig_payload_bytes,
        any_value(resp_pkts) as resp_pkts,
        any_value(resp_ip_bytes) as resp_ip_bytes,
        any_value(resp_payload_bytes) as resp_payload_bytes,
        -- an unlinked leg: its own tuple, as captured (it may be either side of a NAT)
        any_value(orig_h) filter (where leg_rank = 1) as leg_orig_h,
        any_value(orig_p) filter (where leg_rank = 1) as leg_orig_p,
        any_value(resp_h) filter (where leg_rank = 1) as leg_resp_h,
        any_value(resp_p) filter (where leg_rank = 1) as leg_resp_p,
        -- the pre-NAT and post-NAT leg to show: the translating node's, else the earliest
        any_value(node) filter (where role = 'pre_nat' and role_rank = 1)
            as pre_node,
        any_value(ifaces) filter (where role = 'pre_nat' and role_rank = 1)
            as pre_ifaces,
        any_value(source_file) filter (where role = 'pre_nat' and role_rank = 1)
            as pre_source_file,
        any_value(uid) filter (where role = 'pre_nat' and role_rank = 1)
            as pre_uid,
        any_value(community_id) filter (where role = 'pre_nat' and role_rank = 1)
            as pre_community_id,
        any_value(node) filter (where role = 'post_nat' and role_rank = 1)
            as post_node,
        any_value(ifaces) filter (where role = 'post_nat' and role_rank = 1)
            as post_ifaces,
        any_value(source_file) filter (where role = 'post_nat' and role_rank = 1)
            as post_source_file,
        any_value(uid) filter (where role = 'post_nat' and role_rank = 1)
            as post_uid,
        any_value(community_id) filter (where role = 'post_nat' and role_rank = 1)
            as post_community_id,
        -- why: each node stamps packets with its own clock (clock_offsets), so the times are
        -- the translating node's when it captured the connection
        coalesce(min(first_ns) filter (where is_on_nat_node), min(first_ns)) as first_ns,
        coalesce(max(last_ns) filter (where is_on_nat_node), max(last_ns)) as last_ns,
        list_sort(list_distinct(list(node))) as nodes,
        count(leg_id) as n_legs,
        -- why: list_sort of (key, leg) pairs rather than an ordered aggregate, which DuckDB
        -- cannot spill to disk under a memory limit
        [
            x.leg
            for x in list_sort(
                list(
                    {
                        'sort_key': {'first_ns': first_ns, 'node': node, 'role': role},
                        'leg': {
                            'role': role,
                            'node': node,
                            'ifaces': ifaces,
                            'source_file': source_file,
                            'uid': uid,
                            'community_id': community_id,
                            'orig': orig_h || ':' || orig_p,
                            'resp': resp_h || ':' || resp_p,
                            'first_ts': make_timestamp_ns(first_ns),
                            'capture_files': n_files
                        }
                    }
                ) filter (where leg_id is not null)
            )
        ] as legs
    from leg_flows
    group by conn_id
),

final as (
    select
        make_timestamp_ns(coalesce(p.first_ns, p.first_event_ns)) as ts,
        make_timestamp_ns(coalesce(p.last_ns, p.last_event_ns)) as last_ts,
        p.conn_id,
        p.proto,
        coalesce(p.client_ip, p.leg_orig_h) as client_ip,
        coalesce(p.client_port, p.leg_orig_p) as client_port,
        coalesce(p.dialed_ip, p.leg_resp_h) as dialed_ip,
        coalesce(p.dialed_port, p.leg_resp_p) as dialed_port,
        p.backend_ip,
        p.backend_port,
        p.snat_ip,
        p.snat_port,
        p.nat_kind,
        case when p.nat_kind in ('dnat', 'dnat+snat') then p.nat_node end as dnat_node,
        p.nat_node,
        p.snat_class,
        p.snat_class_basis,
        case
            when p.has_conntrack and p.n_legs > 0 then 'both'
            when p.has_conntrack then 'conntrack'
            else 'pcap'
        end as evidence,
        case when p.link_status = 'linked' then 'matched' else p.link_status end as match_status,
        case
            when p.link_status = 'linked' then p.match_rule
            when p.link_status = 'ambiguous' then p.candidate_rules || ': several candidates'
        end as match_rule,
        p.pre_node,
        p.pre_ifaces,
        p.pre_source_file,
        p.pre_uid,
        p.pre_community_id,
        p.post_node,
        p.post_ifaces,
        p.post_source_file,
        p.post_uid,
        p.post_community_id,
        p.nodes,
        p.n_legs,
        p.legs,
        p.orig_pkts,
        p.orig_ip_bytes,
        p.orig_payload_bytes,
        p.resp_pkts,
        p.resp_ip_bytes,
        p.resp_payload_bytes,
        coalesce(svc.service, nodeport.service) as service,
        client.name as client_name,
        coalesce(svc_name.name, nodeport_name.name, dialed.name) as dialed_name,
        backend.name as backend_name,
        snat.name as snat_name,
        p.conntrack_source_file,
        p.conntrack_source_line,
        p.bundle_id
    from per_conn as p
    left join service_ports as svc
        on svc.bundle_id = p.bundle_id and svc.proto = p.proto
        and svc.cluster_ip = coalesce(p.dialed_ip, p.leg_resp_h)
        and svc.port = coalesce(p.dialed_port, p.leg_resp_p)
    -- why: a NodePort answers on every node address, so it is matched by port alone, and only
    -- when the connection was DNATed
    left join service_ports as nodeport
        on nodeport.bundle_id = p.bundle_id and nodeport.proto = p.proto
        and nodeport.node_port = p.dialed_port and p.nat_kind in ('dnat', 'dnat+snat')
    left join names as client
        on client.bundle_id = p.bundle_id and client.ip = coalesce(p.client_ip, p.leg_orig_h)
    left join names as dialed
        on dialed.bundle_id = p.bundle_id and dialed.ip = coalesce(p.dialed_ip, p.leg_resp_h)
    left join names as backend on backend.bundle_id = p.bundle_id and backend.ip = p.backend_ip
    left join names as snat on snat.bundle_id = p.bundle_id and snat.ip = p.snat_ip
    left join service_names as svc_name
        on svc_name.bundle_id = p.bundle_id and svc_name.proto = p.proto
        and svc_name.ip = coalesce(p.dialed_ip, p.leg_resp_h)
        and svc_name.port = coalesce(p.dialed_port, p.leg_resp_p)
    left join service_names as nodeport_name
        on nodeport_name.bundle_id = p.bundle_id and nodeport_name.proto = p.proto
        and nodeport_name.ip = '*' and nodeport_name.port = p.dialed_port
        and p.nat_kind in ('dnat', 'dnat+snat')
)

select * from final
order by bundle_id, ts, conn_id

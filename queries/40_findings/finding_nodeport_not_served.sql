-- question: On which node addresses does IPVS have no virtual server for a NodePort, and which SYNs to a Service address or NodePort were retransmitted without a SYN/ACK, losing how much time?
-- grain: one row per bundle, node, address and NodePort missing from IPVS; one per node, capture-seen dialed address and port with unanswered retransmitted SYNs
-- inputs: stg_ipvs__services, stg_host__addrs, stg_k8s__service_ports, flows
with ipvs as (
    select * from stg_ipvs__services
    where format in ('list', 'save', 'proc') and vport is not null
),

addrs as (
    select * from stg_host__addrs
),

service_ports as (
    select * from stg_k8s__service_ports
),

-- the addresses kube-proxy in IPVS mode binds NodePorts to by default: every global IPv4
-- address of the node except those on kube-ipvs0 (the Service VIPs themselves)
node_addresses as (
    select distinct bundle_id, node, local as address, ifname, source_file, source_line
    from addrs
    where family = 'inet' and scope = 'global' and ifname <> 'kube-ipvs0'
        and local is not null
),

ipvs_nodes as (
    select distinct bundle_id, node from ipvs
),

-- NodePorts: from kubectl, and (without it) every port IPVS serves on a node address
node_ports as (
    select distinct bundle_id, proto, node_port as port from service_ports
    where node_port is not null
    union
    select distinct i.bundle_id, i.proto, i.vport as port
    from ipvs as i
    semi join node_addresses as a
        on a.bundle_id = i.bundle_id and a.node = i.node and a.address = i.vip
),

not_served as (
    select a.bundle_id, a.node, a.address, a.ifname, p.proto, p.port, a.source_file,
        a.source_line
    from node_addresses as a
    semi join ipvs_nodes as n on n.bundle_id = a.bundle_id and n.node = a.node
    join node_ports as p on p.bundle_id = a.bundle_id
    anti join ipvs as i
        on i.bundle_id = a.bundle_id and i.node = a.node and i.vip = a.address
        and i.proto = p.proto and i.vport = p.port
),

listing_files as (
    select bundle_id, node, min(source_file) as listing_file
    from ipvs
    group by all
),

-- SYNs retransmitted to a Service address or a NodePort with no reply at this capture point
service_addresses as (
    select distinct bundle_id, proto, cluster_ip as ip, port from service_ports
    where cluster_ip is not null and cluster_ip <> 'None'
    union
    select distinct bundle_id, proto, vip as ip, vport as port from ipvs
),

unanswered as (
    select f.*
    from flows as f
    where f.proto = 'tcp' and f.conn_state = 'S0' and f.orig_pkts >= 2
        and (
            exists (
                select 1 from service_addresses as s
                where s.bundle_id = f.bundle_id and s.proto = 'tcp' and s.ip = f.resp_h
                    and s.port = f.resp_p
            )
            or exists (
                select 1 from service_ports as s
                where s.bundle_id = f.bundle_id and s.proto = 'tcp' and s.node_port = f.resp_p
            )
        )
),

-- why: one connection is seen by several capture files of its node (eth0, the veth, any);
-- it counts once per node, with the longest time any of them saw it waiting
per_connection as (
    select
        bundle_id,
        node,
        orig_h,
        orig_p,
        resp_h,
        resp_p,
        min(ts) as first_ts,
        max(ts + to_microseconds(cast(coalesce(duration, 0) * 1e6 as bigint))) as last_ts,
        max(coalesce(duration, 0)) as waited_s,
        max(orig_pkts) as syns,
        arg_min(source_file || ' frame ' || first_frame_no, ts) as place,
        any_value(resp_name) as resp_name
    from unanswered
    group by all
),

syn_groups as (
    select
        bundle_id,
        node,
        resp_h,
        resp_p,
        any_value(resp_name) as resp_name,
        count(*) as n,
        sum(syns) as syns,
        sum(waited_s) as waited_s,
        min(first_ts) as first_seen,
        max(last_ts) as last_seen,
        list(
            orig_h || ':' || orig_p || ' -> ' || resp_h || ':' || resp_p || ' ' || place
            order by first_ts, orig_h, orig_p
        ) as places
    from per_connection
    group by all
),

final as (
    select
        'nodeport_not_served' as finding,
        'warning' as severity,
        s.node,
        s.address || ':' || s.port || '/' || s.proto as subject,
        null::timestamptz as first_seen,
        null::timestamptz as last_seen,
        1::bigint as count,
        format(
            'NodePort {}/{} is not served on {} ({}), an address {} holds: IPVS has no '
            || 'virtual server {}:{}, so connections to it there are refused or time out.',
            s.port, s.proto, s.address, s.ifname, s.node, s.address, s.port
        ) as summary,
        s.source_file || ':' || s.source_line || ' (address), '
            || coalesce(m.listing_file, '?') || ' (IPVS listing)' as evidence,
        'Check kube-proxy''s --nodeport-addresses (nodePortAddresses) and its log for this '
        || 'address; an address added after kube-proxy started is served after its next '
        || 'sync.' as next_step,
        s.bundle_id
    from not_served as s
    left join listing_files as m on m.bundle_id = s.bundle_id and m.node = s.node
    union all
    select
        'nodeport_not_served' as finding,
        'error' as severity,
        node,
        coalesce(resp_name || ' ', '') || resp_h || ':' || resp_p || '/tcp' as subject,
        first_seen,
        last_seen,
        n as count,
        format(
            '{} connections to {}:{}{} seen on {} sent {} SYNs between them and got no '
            || 'SYN/ACK; about {} s were lost waiting.',
            n, resp_h, resp_p, coalesce(' (' || resp_name || ')', ''), node, syns,
            round(waited_s, 1)
        ) as summary,
        array_to_string(places[1:5], ', ')
            || case when len(places) > 5 then format(' (+{} more)', len(places) - 5) else '' end
            as evidence,
        'Follow one SYN through the node: nat_translations / conntrack (UNREPLIED SYN_SENT, '
        || 'insert_failed), the backend''s capture, and the route and rules back; a SYN that '
        || 'never leaves the node was dropped by it.' as next_step,
        bundle_id
    from syn_groups
)

select * from final
order by bundle_id, node, subject

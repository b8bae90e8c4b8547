-- question: Which SNATed connections share their post-SNAT tuple with another connection, and which SNAT source ports were chosen inside the NodePort range without --random-fully?
-- grain: one row per bundle, colliding post-SNAT tuple; and one per node, SNAT address and rule whose ports fell in 30000-32767
-- inputs: nat_translations, snat_decisions
with translations as (
    select * from nat_translations where nat_kind in ('snat', 'dnat+snat')
),

decisions as (
    select * from snat_decisions where nat_kind in ('snat', 'dnat+snat')
),

-- why: the backend replies to snat_ip:snat_port; two connections with the same post-SNAT
-- tuple (same backend, same protocol) cannot both get their replies
post_snat as (
    select
        bundle_id,
        proto,
        snat_ip,
        snat_port,
        backend_ip,
        backend_port,
        count(distinct node || '|' || client_ip || '|' || client_port) as n_clients,
        count(*) as n,
        min(first_event_ts) as first_seen,
        max(last_event_ts) as last_seen,
        string_agg(distinct node, ', ' order by node) as nodes,
        list(
            node || ' ' || client_ip || ':' || client_port || ' ' || source_file || ':'
            || source_line
            order by source_file, source_line
        ) as places
    from translations
    where snat_port is not null
    group by all
    having count(distinct node || '|' || client_ip || '|' || client_port) > 1
),

-- why: a SNAT source port inside the NodePort range is one a NodePort may also answer on;
-- MASQUERADE keeps the client's port when it can, so this happens when clients use ports
-- there, and --random-fully would pick another
in_nodeport_range as (
    select
        bundle_id,
        node,
        proto,
        observed_snat_ip as snat_ip,
        decision as rule,
        count(*) as n,
        min(observed_snat_port) as min_port,
        max(observed_snat_port) as max_port,
        list(source_file || ':' || source_line order by source_file, source_line) as places
    from decisions
    where is_snat_port_in_nodeport_range and not coalesce(is_random_fully, false)
    group by all
),

final as (
    select
        'snat_port_collision' as finding,
        'error' as severity,
        nodes as node,
        proto || ' ' || snat_ip || ':' || snat_port || ' -> ' || backend_ip || ':'
            || backend_port as subject,
        first_seen,
        last_seen,
        n_clients as count,
        format(
            '{} connections ({}) were SNATed to the same {} {}:{} towards {}:{}: the backend '
            || 'cannot tell them apart, so replies reach only one of them.',
            n_clients, nodes, proto, snat_ip, snat_port, backend_ip, backend_port
        ) as summary,
        array_to_string(places[1:5], ', ')
            || case when len(places) > 5 then format(' (+{} more)', len(places) - 5) else '' end
            as evidence,
        'Add --random-fully to the MASQUERADE/SNAT rules (kube-proxy and the CNI do when '
        || 'iptables supports it), or give each node its own SNAT address.' as next_step,
        bundle_id
    from post_snat
    union all
    select
        'snat_port_collision' as finding,
        'warning' as severity,
        node,
        proto || ' ' || rule || ' to ' || snat_ip as subject,
        null::timestamptz as first_seen,
        null::timestamptz as last_seen,
        n as count,
        format(
            '{} {} connections on {} were SNATed to {} with source ports {}-{}, inside the '
            || 'NodePort range 30000-32767, by a rule without --random-fully: a reply may '
            || 'be taken for NodePort traffic, and ports clash under load.',
            n, proto, node, snat_ip, min_port, max_port
        ) as summary,
        array_to_string(places[1:5], ', ')
            || case when len(places) > 5 then format(' (+{} more)', len(places) - 5) else '' end
            as evidence,
        'Keep clients'' ephemeral ports out of the NodePort range '
        || '(net.ipv4.ip_local_port_range, net.ipv4.ip_local_reserved_ports=30000-32767) '
        || 'or add --random-fully to the rule.' as next_step,
        bundle_id
    from in_nodeport_range
)

select * from final
order by bundle_id, node, subject

-- question: Which connections to a Service with externalTrafficPolicy Local reached their backend from a rewritten source instead of the client's address?
-- grain: one row per bundle, node, Service NodePort and SNAT source
-- inputs: nat_translations, stg_k8s__service_ports
with translations as (
    select * from nat_translations where nat_kind = 'dnat+snat'
),

local_ports as (
    select * from stg_k8s__service_ports
    where lower(external_traffic_policy) = 'local' and node_port is not null
),

-- why: externalTrafficPolicy Local promises that traffic arriving on a NodePort goes to a
-- backend on that node with the client's address kept; a SNATed reply tuple breaks it
lost as (
    select
        t.*,
        s.namespace || '/' || s.service || coalesce(':' || s.port_name, '') as service
    from translations as t
    join local_ports as s
        on s.bundle_id = t.bundle_id and s.proto = t.proto and s.node_port = t.dialed_port
        and t.dialed_ip is distinct from s.cluster_ip
),

grouped as (
    select
        bundle_id,
        node,
        service,
        proto,
        dialed_port,
        snat_ip,
        any_value(snat_name) as snat_name,
        count(*) as n,
        count(distinct client_ip) as n_clients,
        min(first_event_ts) as first_seen,
        max(last_event_ts) as last_seen,
        list(
            client_ip || ':' || client_port || ' -> ' || backend_ip || ':' || backend_port
            || ' as ' || snat_ip || ':' || snat_port || ' ' || source_file || ':'
            || source_line
            order by source_file, source_line
        ) as places
    from lost
    group by all
),

final as (
    select
        'client_source_lost' as finding,
        'warning' as severity,
        node,
        'svc ' || service || ' NodePort ' || dialed_port || '/' || proto as subject,
        first_seen,
        last_seen,
        n as count,
        format(
            '{} connections from {} client(s) to NodePort {} of {} (externalTrafficPolicy '
            || 'Local) on {} reached their backend from {}{} instead of the client''s address.',
            n, n_clients, dialed_port, service, node, snat_ip,
            coalesce(' (' || snat_name || ')', '')
        ) as summary,
        array_to_string(places[1:5], ', ')
            || case when len(places) > 5 then format(' (+{} more)', len(places) - 5) else '' end
            as evidence,
        'Check that the node''s kube-proxy (or CNI) rules honour externalTrafficPolicy Local '
        || '(KUBE-EXT-/KUBE-SVL- chains without KUBE-MARK-MASQ for external sources) and that '
        || 'no other MASQUERADE rule (masq agent, CNI) matches this traffic first.' as next_step,
        bundle_id
    from grouped
)

select * from final
order by bundle_id, node, subject, summary

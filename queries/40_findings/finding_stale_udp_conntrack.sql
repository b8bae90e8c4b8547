-- question: Which UDP conntrack entries send a dialed Service to a backend that is no longer one of its endpoints, or were never translated so that the VIP itself is their reply source (black-holed)?
-- grain: one row per bundle, node, dialed address and stale backend (or untranslated VIP)
-- inputs: nat_translations, int_conntrack_entries__deduplicated, stg_k8s__service_ports, stg_k8s__endpoints, stg_ipvs__backends, derived_expected_backends
--
-- kubernetes#48370, #125467: a UDP client that keeps sending from the same port keeps its
-- conntrack entry alive, and the entry keeps the backend it chose when it was created.
with translations as (
    select * from nat_translations
    where proto = 'udp' and nat_kind in ('dnat', 'dnat+snat')
),

entries as (
    select * from int_conntrack_entries__deduplicated where proto = 'udp'
),

service_ports as (
    select * from stg_k8s__service_ports where proto = 'udp'
),

endpoints as (
    select * from stg_k8s__endpoints where proto = 'udp'
),

ipvs as (
    select * from stg_ipvs__backends
    where proto = 'udp' and vport is not null and format in ('list', 'save', 'proc')
),

promised as (
    select * from derived_expected_backends where proto = 'udp'
),

-- the Service port each entry dialed: its cluster IP and port, else its NodePort
dialed as (
    select
        t.*,
        s.namespace,
        s.service,
        s.port_name
    from translations as t
    left join service_ports as s
        on s.bundle_id = t.bundle_id
        and (
            (s.cluster_ip = t.dialed_ip and s.port = t.dialed_port)
            or (s.node_port = t.dialed_port and t.dialed_ip is distinct from s.cluster_ip)
        )
),

-- why: three witnesses of "its endpoints": kubectl's EndpointSlices/Endpoints, the node's
-- IPVS real servers and the node's own rules; an entry is stale when a witness that lists
-- the Service does not list the entry's backend
judged as (
    select
        d.*,
        exists (
            select 1 from endpoints as e
            where e.bundle_id = d.bundle_id and e.namespace = d.namespace
                and e.service = d.service
        ) as has_endpoints,
        exists (
            select 1 from endpoints as e
            where e.bundle_id = d.bundle_id and e.namespace = d.namespace
                and e.service = d.service and e.address = d.backend_ip
                and e.port = d.backend_port and coalesce(e.is_ready, true)
        ) as in_endpoints,
        exists (
            select 1 from ipvs as i
            where i.bundle_id = d.bundle_id and i.node = d.node and i.vip = d.dialed_ip
                and i.vport = d.dialed_port
        ) as has_ipvs,
        exists (
            select 1 from ipvs as i
            where i.bundle_id = d.bundle_id and i.node = d.node and i.vip = d.dialed_ip
                and i.vport = d.dialed_port and i.backend_ip = d.backend_ip
                and i.backend_port = d.backend_port
        ) as in_ipvs,
        exists (
            select 1 from promised as p
            where p.bundle_id = d.bundle_id and p.node = d.node and p.dialed_ip = d.dialed_ip
                and p.dialed_port = d.dialed_port
        ) as has_rules,
        exists (
            select 1 from promised as p
            where p.bundle_id = d.bundle_id and p.node = d.node and p.dialed_ip = d.dialed_ip
                and p.dialed_port = d.dialed_port and p.backend_ip = d.backend_ip
                and p.backend_port is not distinct from d.backend_port
        ) as in_rules
    from dialed as d
),

stale as (
    select
        *,
        concat_ws(
            ', ',
            case when has_endpoints and not in_endpoints then 'kubectl endpoints' end,
            case when has_ipvs and not in_ipvs then 'IPVS real servers' end,
            case when has_rules and not in_rules then 'the node''s rules' end
        ) as missing_from
    from judged
    where (has_endpoints and not in_endpoints)
        or (has_ipvs and not in_ipvs)
        or (has_rules and not in_rules)
),

stale_groups as (
    select
        bundle_id,
        node,
        dialed_ip,
        dialed_port,
        backend_ip,
        backend_port,
        any_value(coalesce(dialed_name, dialed_ip || ':' || dialed_port)) as dialed_label,
        any_value(missing_from) as missing_from,
        count(*) as n,
        min(first_event_ts) as first_seen,
        max(last_event_ts) as last_seen,
        list(source_file || ':' || source_line order by source_file, source_line) as places
    from stale
    group by all
),

-- why: an entry made before the Service had endpoints (or rules) is not translated; while a
-- client keeps sending, its datagrams go to the VIP itself and nothing answers
service_vips as (
    select distinct bundle_id, '*' as node, cluster_ip as vip, port as vport,
        'svc ' || namespace || '/' || service || coalesce(':' || port_name, '') as name
    from service_ports
    where cluster_ip is not null and cluster_ip <> 'None'
    union all
    select distinct bundle_id, node, vip, vport, null as name from ipvs
),

untranslated as (
    select
        e.bundle_id,
        e.node,
        e.orig_dst as vip,
        e.orig_dport as vport,
        any_value(named.name) as name,
        count(*) as n,
        min(e.first_event_ts) as first_seen,
        max(e.last_event_ts) as last_seen,
        list(e.source_file || ':' || e.source_line order by e.source_file, e.source_line)
            as places
    from entries as e
    left join service_vips as named
        on named.bundle_id = e.bundle_id and named.node = '*' and named.vip = e.orig_dst
        and named.vport = e.orig_dport
    where e.reply_src = e.orig_dst and e.reply_sport = e.orig_dport
        and exists (
            select 1 from service_vips as v
            where v.bundle_id = e.bundle_id and v.node in ('*', e.node)
                and v.vip = e.orig_dst and v.vport = e.orig_dport
        )
    group by all
),

final as (
    select
        'stale_udp_conntrack' as finding,
        'error' as severity,
        node,
        dialed_label || ' -> ' || backend_ip || ':' || backend_port as subject,
        first_seen,
        last_seen,
        n as count,
        format(
            '{} UDP conntrack {} on {} still {} {} to {}:{}, which is not among its endpoints '
            || '({} no longer list it): datagrams go to a backend that left until the entry '
            || 'expires, and a client that keeps sending keeps it alive.',
            n, case when n = 1 then 'entry' else 'entries' end, node,
            case when n = 1 then 'sends' else 'send' end, dialed_label, backend_ip,
            backend_port, missing_from
        ) as summary,
        array_to_string(places[1:5], ', ')
            || case when len(places) > 5 then format(' (+{} more)', len(places) - 5) else '' end
            as evidence,
        format(
            'Delete the stale entries (conntrack -D -p udp --orig-dst {} --orig-port-dst {}) '
            || 'and check that kube-proxy clears UDP conntrack entries when an endpoint goes '
            || '(its log, and that the conntrack binary is in its image).',
            dialed_ip, dialed_port
        ) as next_step,
        bundle_id
    from stale_groups
    union all
    select
        'stale_udp_conntrack' as finding,
        'error' as severity,
        node,
        coalesce(name || ' ', '') || vip || ':' || vport || '/udp (not translated)' as subject,
        first_seen,
        last_seen,
        n as count,
        format(
            '{} UDP conntrack {} on {} to the Service address {}:{} {} no DNAT: the reply '
            || 'is expected from the VIP itself, so the datagrams are black-holed while the '
            || 'client keeps the entry alive.',
            n, case when n = 1 then 'entry' else 'entries' end, node, vip, vport,
            case when n = 1 then 'has' else 'have' end
        ) as summary,
        array_to_string(places[1:5], ', ')
            || case when len(places) > 5 then format(' (+{} more)', len(places) - 5) else '' end
            as evidence,
        format(
            'Delete them (conntrack -D -p udp --orig-dst {} --orig-port-dst {}); they were '
            || 'made before the Service had endpoints or rules (kubernetes#48370).',
            vip, vport
        ) as next_step,
        bundle_id
    from untranslated
)

select * from final
order by bundle_id, node, subject

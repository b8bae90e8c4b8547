-- question: Which pods reached themselves through a Service (hairpin) without being masqueraded, so that their own reply cannot be translated back?
-- grain: one row per bundle, node, pod and dialed address
-- inputs: nat_translations
--
-- why: kube-proxy marks a hairpin for masquerade (KUBE-SEP: -s <pod ip> -j KUBE-MARK-MASQ);
-- without it the pod receives a packet from its own address, which its kernel drops as a
-- martian, or answers directly without the VIP: the connection hangs. A masqueraded hairpin
-- works and is not a finding.
with translations as (
    select * from nat_translations
    where nat_kind in ('dnat', 'dnat+snat') and client_ip = backend_ip
),

unmasqueraded as (
    select * from translations
    where snat_ip = client_ip and snat_port is not distinct from client_port
),

grouped as (
    select
        bundle_id,
        node,
        proto,
        client_ip,
        dialed_ip,
        dialed_port,
        any_value(client_name) as client_name,
        any_value(coalesce(dialed_name, dialed_ip || ':' || dialed_port)) as dialed_label,
        count(*) as n,
        count(*) filter (where flags like '%UNREPLIED%') as n_unreplied,
        min(first_event_ts) as first_seen,
        max(last_event_ts) as last_seen,
        list(
            client_ip || ':' || client_port || ' -> ' || dialed_ip || ':' || dialed_port
            || ' ' || source_file || ':' || source_line
            order by source_file, source_line
        ) as places
    from unmasqueraded
    group by all
),

final as (
    select
        'hairpin' as finding,
        'warning' as severity,
        node,
        coalesce(client_name, client_ip) || ' -> ' || dialed_label as subject,
        first_seen,
        last_seen,
        n as count,
        format(
            '{} {} connections from {} to {} came back to the pod itself (hairpin) without '
            || 'masquerade; {} of them never got a reply (UNREPLIED).',
            n, proto, coalesce(client_name, client_ip), dialed_label, n_unreplied
        ) as summary,
        array_to_string(places[1:5], ', ')
            || case when len(places) > 5 then format(' (+{} more)', len(places) - 5) else '' end
            as evidence,
        'Check the KUBE-SEP chains for `-s <pod ip> -j KUBE-MARK-MASQ` (kube-proxy '
        || '--masquerade-all / hairpin handling) or enable hairpin mode on the bridge '
        || '(kubelet --hairpin-mode=hairpin-veth, promiscuous-bridge).' as next_step,
        bundle_id
    from grouped
)

select * from final
order by bundle_id, node, subject

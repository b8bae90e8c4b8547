-- question: For each translated connection, which rules marked and SNATed it, which source did they predict, and does that match what the backend saw?
-- grain: one row per row of nat_translations
-- inputs: nat_translations, derived_snat_decisions
with translations as (
    select * from nat_translations
),

decisions as (
    select * from derived_snat_decisions
),

final as (
    select
        t.node,
        t.proto,
        t.client_ip,
        t.client_port,
        t.dialed_ip,
        t.dialed_port,
        t.backend_ip,
        t.backend_port,
        t.snat_ip as observed_snat_ip,
        t.snat_port as observed_snat_port,
        t.nat_kind,
        t.client_name,
        t.dialed_name,
        t.backend_name,
        t.snat_name,
        d.hook,
        coalesce(d.decision, 'unknown') as decision,
        d.snat_class,
        d.snat_class_basis,
        d.trail,
        d.mark,
        d.mark_set_by,
        d.dnat_by,
        d.egress_iface,
        d.route,
        d.predicted_snat_ip,
        d.agrees,
        d.reason,
        d.is_random_fully,
        d.is_snat_port_in_nodeport_range,
        d.path_probability,
        d.missing_inputs,
        d.unknowns,
        t.source_file,
        t.source_line,
        t.bundle_id
    from translations as t
    left join decisions as d
        on d.bundle_id = t.bundle_id and d.node = t.node and d.proto = t.proto
        and d.client_ip = t.client_ip and d.client_port is not distinct from t.client_port
        and d.dialed_ip = t.dialed_ip and d.dialed_port is not distinct from t.dialed_port
        and d.backend_ip = t.backend_ip and d.backend_port is not distinct from t.backend_port
        and d.snat_ip = t.snat_ip and d.snat_port is not distinct from t.snat_port
)

select * from final
order by bundle_id, node, proto, dialed_ip, dialed_port, client_ip, client_port, backend_ip,
    backend_port

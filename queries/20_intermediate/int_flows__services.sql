-- question: Which application protocols (http, dns, whoami) did the messages of each connection speak, as Zeek's conn.log `service` names them?
-- grain: one row per connection per capture file that carried at least one recognised application message
-- inputs: stg_pcap__app_messages, stg_pcap__flows
--
-- why: app messages come from outer packets only; a message belongs to the connection of its
-- capture file with the same two endpoints (either way round) whose frames span its frame,
-- the same rule the app_messages view uses to give each message its uid
with messages as (
    select
        bundle_id,
        node,
        source_file,
        proto,
        frame_no,
        case
            when kind like 'http_%' then 'http'
            when kind like 'dns_%' then 'dns'
            when kind = 'udp_whoami' then 'whoami'
        end as service,
        least(src_ip || '|' || src_port, dst_ip || '|' || dst_port) as end_a,
        greatest(src_ip || '|' || src_port, dst_ip || '|' || dst_port) as end_b
    from stg_pcap__app_messages
),

flows as (
    select
        bundle_id,
        node,
        source_file,
        proto,
        uid,
        first_frame_no,
        last_frame_no,
        least(orig_h || '|' || orig_p, resp_h || '|' || resp_p) as end_a,
        greatest(orig_h || '|' || orig_p, resp_h || '|' || resp_p) as end_b
    from stg_pcap__flows
    where proto in ('tcp', 'udp')
),

matched as (
    select
        f.bundle_id,
        f.node,
        f.source_file,
        f.uid,
        m.service
    from messages as m
    inner join flows as f
        on
            m.bundle_id = f.bundle_id
            and m.node = f.node
            and m.source_file = f.source_file
            and m.proto = f.proto
            and m.end_a = f.end_a
            and m.end_b = f.end_b
            and m.frame_no between f.first_frame_no and f.last_frame_no
    where m.service is not null
),

final as (
    select
        bundle_id,
        node,
        source_file,
        uid,
        -- Zeek joins several detected services with a comma
        array_to_string(list_sort(list_distinct(list(service))), ',') as service
    from matched
    group by bundle_id, node, source_file, uid
)

select * from final

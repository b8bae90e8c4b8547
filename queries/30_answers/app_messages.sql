-- question: What did the applications say: HTTP requests (Host = the address dialed), whoami answers (the backend and the source it saw) and DNS lookups?
-- grain: one row per application message per capture file
-- inputs: stg_pcap__app_messages, flows
with messages as (
    select * from stg_pcap__app_messages
),

-- why: a message belongs to its connection whichever side sent it: both sides are keyed by
-- their two endpoints in a fixed order, so one equality (hash) join finds the flow
conns as (
    select
        *,
        least(orig_h || '|' || orig_p, resp_h || '|' || resp_p) as end_a,
        greatest(orig_h || '|' || orig_p, resp_h || '|' || resp_p) as end_b
    from flows
),

keyed_messages as (
    select
        *,
        least(src_ip || '|' || src_port, dst_ip || '|' || dst_port) as end_a,
        greatest(src_ip || '|' || src_port, dst_ip || '|' || dst_port) as end_b
    from messages
),

with_flow as (
    select
        m.* exclude (end_a, end_b),
        f.uid,
        f.community_id
    from keyed_messages as m
    left join conns as f
        on
            m.bundle_id = f.bundle_id
            and m.node = f.node
            and m.source_file = f.source_file
            and m.proto = f.proto
            and m.end_a = f.end_a
            and m.end_b = f.end_b
            and m.frame_no between f.first_frame_no and f.last_frame_no
    qualify row_number() over (
        partition by m.bundle_id, m.node, m.source_file, m.frame_no
        order by f.ts
    ) = 1
),

final as (
    select
        ts,
        bundle_id,
        node,
        source_file,
        frame_no,
        kind,
        proto,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        http_method,
        http_uri,
        http_host,
        http_user_agent,
        http_status,
        http_reason,
        whoami_hostname,
        whoami_ip,
        whoami_remote_addr,
        body_lines,
        dns_id,
        dns_qname,
        dns_qtype,
        dns_rcode,
        dns_answers,
        uid,
        community_id
    from with_flow
)

select * from final
order by bundle_id, node, source_file, frame_no

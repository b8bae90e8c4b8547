-- question: What did the applications say: HTTP requests (Host = the address dialed), whoami answers (the backend and the source it saw) and DNS lookups?
-- grain: one row per application message per capture file
-- inputs: stg_pcap__app_messages, flows
with messages as (
    select * from stg_pcap__app_messages
),

conns as (
    select * from flows
),

with_flow as (
    select
        m.*,
        f.uid,
        f.community_id
    from messages as m
    left join conns as f
        on
            m.bundle_id = f.bundle_id
            and m.node = f.node
            and m.source_file = f.source_file
            and m.proto = f.proto
            and m.frame_no between f.first_frame_no and f.last_frame_no
            -- why: a message belongs to its connection whichever side sent it
            and (
                (m.src_ip = f.orig_h and m.src_port = f.orig_p
                    and m.dst_ip = f.resp_h and m.dst_port = f.resp_p)
                or (m.src_ip = f.resp_h and m.src_port = f.resp_p
                    and m.dst_ip = f.orig_h and m.dst_port = f.orig_p)
            )
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

-- question: Which HTTP and DNS messages did the packets carry, one row per message?
-- grain: one row per application message in an outer packet (HTTP head, DNS message, UDP whoami)
-- inputs: raw_app_messages
with source as (
    select * from raw_app_messages
),

final as (
    select
        bundle_id,
        node,
        source_file,
        frame_no,
        ts,
        src_ip,
        dst_ip,
        lower(proto) as proto,
        src_port,
        dst_port,
        kind,
        http_method,
        http_uri,
        http_host,
        http_user_agent,
        http_status,
        http_reason,
        body_lines,
        whoami_hostname,
        whoami_ip,
        whoami_remote_addr,
        dns_id,
        rtrim(dns_qname, '.') as dns_qname,
        dns_qtype,
        dns_rcode,
        dns_answers
    from source
)

select * from final

-- question: Which connections did each capture file see, as summarised when the capture was loaded?
-- grain: one row per connection per capture file (a vantage point)
-- inputs: raw_flows
with source as (
    select * from raw_flows
),

final as (
    select
        ts,
        uid,
        orig_h,
        orig_p,
        resp_h,
        resp_p,
        proto,
        duration,
        orig_bytes,
        resp_bytes,
        conn_state,
        history,
        missed_bytes,
        orig_pkts,
        orig_ip_bytes,
        resp_pkts,
        resp_ip_bytes,
        ip_proto,
        community_id,
        first_seq,
        rtt_syn_synack_ms,
        rtt_synack_ack_ms,
        bundle_id,
        node,
        source_file,
        iface,
        first_frame_no,
        last_frame_no
    from source
)

select * from final

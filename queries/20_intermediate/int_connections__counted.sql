-- question: How many packets and bytes did each connection carry each way, counting a packet once however many capture points saw it?
-- grain: one row per connection and leg (the rows of int_connections__legs), with the connection's packet and byte counts
-- inputs: int_connections__legs, int_legs__packets
-- materialized: true
with legs as materialized (
    select * from int_connections__legs
),

packets as (
    select * from int_legs__packets
),

-- why: one packet crosses every capture point of its connection with the same IP ID, IP
-- length, sequence and acknowledgement numbers and flags (NAT changes only addresses, ports
-- and checksums), so that is its identity across nodes and both sides of the NAT. Every leg
-- is oriented client first, so is_from_orig is "sent by the client" on every leg.
identities as (
    select
        l.conn_id,
        p.is_from_orig,
        p.ip_id,
        p.ip_len,
        p.seq,
        p.ack,
        p.flags,
        any_value(p.payload_len) as payload_len,
        -- the same header sent twice (IP ID 0 on a resent SYN-ACK) is one packet per
        -- transmission; the vantage point that saw most transmissions counts
        max(p.transmission_no) as transmissions
    from legs as l
    inner join packets as p on p.leg_id = l.leg_id
    group by l.conn_id, p.is_from_orig, p.ip_id, p.ip_len, p.seq, p.ack, p.flags
),

counts as (
    select
        conn_id,
        coalesce(sum(transmissions) filter (where is_from_orig), 0)::bigint as orig_pkts,
        coalesce(sum(transmissions * ip_len) filter (where is_from_orig), 0)::bigint
            as orig_ip_bytes,
        coalesce(sum(transmissions * payload_len) filter (where is_from_orig), 0)
            ::bigint as orig_payload_bytes,
        coalesce(sum(transmissions) filter (where not is_from_orig), 0)::bigint as resp_pkts,
        coalesce(sum(transmissions * ip_len) filter (where not is_from_orig), 0)
            ::bigint as resp_ip_bytes,
        coalesce(sum(transmissions * payload_len) filter (where not is_from_orig), 0)
            ::bigint as resp_payload_bytes
    from identities
    group by conn_id
),

final as (
    select
        l.*,
        c.* exclude (conn_id)
    from legs as l
    left join counts as c using (conn_id)
)

select * from final

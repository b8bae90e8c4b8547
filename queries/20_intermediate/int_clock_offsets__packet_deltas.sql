-- question: For each packet seen at two nodes, how far apart were the two nodes' timestamps, and which way did the packet travel?
-- grain: one row per packet (same tuple, IP ID, length, sequence and acknowledgement numbers) and pair of nodes that both saw it
-- inputs: int_legs__packets
--
-- A packet crossing from node a to node b keeps its tuple, IP ID and length on the wire, so the
-- pair (a's last copy, b's first copy) measures b's clock minus a's clock plus the one-way delay.
with packets as (
    select * from int_legs__packets
    -- why: without an IP ID (IPv6) or with IP ID 0 (DF-flagged UDP, SYN-ACKs) a UDP datagram has
    -- too little identity to be recognised at another node; TCP still has its seq/ack numbers
    where ip_id is not null and (proto = 'tcp' or ip_id <> 0)
),

counted as (
    select
        *,
        count(*) over (
            partition by bundle_id, node, proto, src_ip, src_port, dst_ip, dst_port, ip_id,
                ip_len, seq, ack, flags
        ) as n_same_on_node
    from packets
),

-- why: a header that repeats on one node (a resent packet with the same IP ID) cannot be
-- paired with one copy at the other node
unique_on_node as (
    select * from counted where n_same_on_node = 1
),

pairs as (
    select
        a.bundle_id,
        a.node as node_a,
        b.node as node_b,
        a.proto,
        a.src_ip,
        a.src_port,
        a.dst_ip,
        a.dst_port,
        a.ip_id,
        a.seq,
        a.ack,
        a.first_ns as a_first_ns,
        a.last_ns as a_last_ns,
        b.first_ns as b_first_ns,
        b.last_ns as b_last_ns,
        -- why: every router hop lowers the TTL, so the node that saw the higher TTL is upstream
        -- (a packet leaves one node and enters the next with the same TTL: compare the highest
        -- TTLs first, then the lowest)
        case
            when a.max_ttl > b.max_ttl or (a.max_ttl = b.max_ttl and a.min_ttl > b.min_ttl)
                then 'a_to_b'
            when b.max_ttl > a.max_ttl or (b.max_ttl = a.max_ttl and b.min_ttl > a.min_ttl)
                then 'b_to_a'
        end as direction
    from unique_on_node as a
    inner join unique_on_node as b
        on b.bundle_id = a.bundle_id
        and b.node > a.node
        and b.proto = a.proto
        and b.src_ip = a.src_ip
        and b.src_port = a.src_port
        and b.dst_ip = a.dst_ip
        and b.dst_port = a.dst_port
        and b.ip_id = a.ip_id
        and b.ip_len = a.ip_len
        and b.seq is not distinct from a.seq
        and b.ack is not distinct from a.ack
        and b.flags = a.flags
),

final as (
    select
        bundle_id,
        node_a,
        node_b,
        direction,
        -- a -> b: b's arrival minus a's departure = offset + delay;
        -- b -> a: b's departure minus a's arrival = offset - delay
        case direction
            when 'a_to_b' then b_first_ns - a_last_ns
            when 'b_to_a' then b_last_ns - a_first_ns
        end as delta_ns,
        proto,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        ip_id,
        seq,
        ack,
        a_first_ns,
        b_first_ns
    from pairs
    where direction is not null
)

select * from final

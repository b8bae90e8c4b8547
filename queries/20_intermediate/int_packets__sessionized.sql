-- question: Which connection (Zeek semantics) does each packet belong to, and did its originator send it?
-- grain: one row per keyed IP packet
-- inputs: int_packets__keyed, int_packets__grouped
--
-- A connection is a run of packets of one flow key in one capture file. A new one starts where
-- Zeek would start one (TCPSessionAdapter.cc, IPBasedAnalyzer.cc, init-bare.zeek):
--   1. the first packet of the key;
--   2. after inactivity: 5 min for TCP, 1 min for UDP, ICMP and other IP protocols;
--   3. TCP reuse: a SYN without ACK after a FIN/RST, or with a sequence number other than the
--      previous SYN of the same side (IsReuse);
--   4. TCP timers that remove a connection: the attempt timer (5 s after an unanswered SYN) and
--      the close delay (5 s after the close completed); the packet after the removal opens a new
--      connection. Timers chain (SYN retransmissions give several S0 connections), so starts
--      are found by walking from each start to the first packet after its expiry (recursive CTE
--      over the few packets where a timer fires inside a segment).
-- Window passes work on narrow rows (numbers only); addresses stay in int_packets__grouped.
with recursive keyed as (
    select * from int_packets__keyed
),

grouped as (
    select * from int_packets__grouped
),

packets as (
    select
        g.group_id,
        k.proto_num,
        k.frame_no,
        k.ts,
        k.ts_ns,
        k.iface,
        k.is_a_src,
        k.is_syn,
        k.is_ack,
        k.is_fin,
        k.is_rst,
        k.proto_num = 6 and k.is_syn and not k.is_ack as is_pure_syn,
        k.flips_if_first,
        k.seq,
        k.ack,
        k."window",
        k.ip_len,
        k.payload_len
    from keyed as k
    inner join grouped as g
        on g.bundle_id = k.bundle_id
        and g.node = k.node
        and g.source_file = k.source_file
        and g.proto_num = k.proto_num
        and g.is_one_way = k.is_one_way
        and g.a_ip = k.a_ip
        and g.a_port is not distinct from k.a_port
        and g.b_ip = k.b_ip
        and g.b_port is not distinct from k.b_port
),

-- pass 1: position, gap, the last pure SYN and last FIN/RST before each packet
pass1 as (
    select
        *,
        row_number() over w as pkt_idx,
        ts_ns - lag(ts_ns) over w as gap_ns,
        last_value(case when is_pure_syn then seq end ignore nulls) over wb as prev_syn_seq,
        last_value(case when is_pure_syn then is_a_src end ignore nulls) over wb as prev_syn_from_a,
        last_value(case when is_pure_syn then ts_ns end ignore nulls) over wb as prev_syn_ns,
        last_value(case when is_pure_syn then frame_no end ignore nulls) over wb as prev_syn_frame,
        last_value(case when is_fin or is_rst then ts_ns end ignore nulls) over wb as prev_close_ns,
        last_value(case when is_fin or is_rst then frame_no end ignore nulls) over wb
            as prev_close_frame,
        max(ts_ns) over wall - min(ts_ns) over wall as group_span_ns
    from packets
    window
        w as (partition by group_id order by ts_ns, frame_no),
        wall as (
            partition by group_id order by ts_ns, frame_no
            rows between unbounded preceding and unbounded following
        ),
        wb as (
            partition by group_id order by ts_ns, frame_no
            rows between unbounded preceding and 1 preceding
        )
),

hard_starts as materialized (
    select
        *,
        case
            when pkt_idx = 1 then true
            -- why: inactivity timeouts (tcp_inactivity_timeout 5 min, udp/icmp/unknown 1 min)
            when gap_ns >= (case when proto_num = 6 then 300 else 60 end)::bigint * 1000000000
                then true
            -- why: a SYN is a new connection unless it repeats the last SYN of the same side
            -- with no FIN/RST since, that SYN included (TCPSessionAdapter::IsReuse)
            when is_pure_syn then not coalesce(
                prev_syn_seq = seq
                and prev_syn_from_a = is_a_src
                and (
                    prev_close_ns is null
                    or prev_close_ns < prev_syn_ns
                    or (prev_close_ns = prev_syn_ns and prev_close_frame < prev_syn_frame)
                ),
                false
            )
            else false
        end as is_hard_start
    from pass1
),

-- the first packet 5 s (attempt timer, tcp_close_delay) or more after each one
-- why: a timer can only fire inside a TCP flow key whose packets span 5 s or more; the
-- windows below skip all other keys (most of them)
later as (
    select
        *,
        min(pkt_idx) over (
            partition by group_id order by ts_ns
            range between 5000000000 following and unbounded following
        ) as idx_after_5s
    from hard_starts
    where proto_num = 6 and group_span_ns >= 5000000000
),

-- pass 2: what happens at or after each packet (per side), up to the group's end
pass2 as (
    select
        *,
        min(case when is_hard_start then pkt_idx end) over wa as next_hard_idx,
        min(case when is_a_src then pkt_idx end) over w as next_a_idx,
        min(case when not is_a_src then pkt_idx end) over w as next_b_idx,
        min(case when is_a_src then ts_ns end) over w as next_a_ns,
        min(case when not is_a_src then ts_ns end) over w as next_b_ns,
        min(case when is_a_src and (is_syn or is_fin or is_rst or payload_len > 0) then ts_ns end)
            over w as next_a_act_ns,
        min(
            case when not is_a_src and (is_syn or is_fin or is_rst or payload_len > 0) then ts_ns end
        ) over w as next_b_act_ns,
        min(case when is_a_src and (is_fin or is_rst) then pkt_idx * 2 + (not is_rst)::integer end)
            over w as next_a_close_code,
        min(
            case when not is_a_src and (is_fin or is_rst) then pkt_idx * 2 + (not is_rst)::integer end
        ) over w as next_b_close_code,
        min(case when is_a_src and (is_fin or is_rst) then ts_ns end) over w as next_a_close_ns,
        min(case when not is_a_src and (is_fin or is_rst) then ts_ns end) over w as next_b_close_ns,
        first_value(case when is_a_src and (is_fin or is_rst) then idx_after_5s end ignore nulls)
            over w as next_a_close_after_5s,
        first_value(
            case when not is_a_src and (is_fin or is_rst) then idx_after_5s end ignore nulls
        ) over w as next_b_close_after_5s
    from later
    window
        w as (
            partition by group_id order by ts_ns, frame_no
            rows between current row and unbounded following
        ),
        wa as (
            partition by group_id order by ts_ns, frame_no
            rows between 1 following and unbounded following
        )
),

-- what a connection opened by this packet would see: "own" is this packet's side
relative as (
    select
        group_id,
        pkt_idx,
        ts_ns,
        next_hard_idx,
        idx_after_5s,
        is_syn,
        is_ack,
        is_fin,
        is_rst,
        flips_if_first,
        case when is_a_src then next_a_close_code else next_b_close_code end as own_close_code,
        case when is_a_src then next_b_close_code else next_a_close_code end as peer_close_code,
        case when is_a_src then next_a_close_after_5s else next_b_close_after_5s end
            as own_close_after_5s,
        case when is_a_src then next_b_close_after_5s else next_a_close_after_5s end
            as peer_close_after_5s,
        case when is_a_src then next_b_idx else next_a_idx end as peer_first_idx,
        case when is_a_src then next_b_ns else next_a_ns end as peer_first_ns,
        case when is_a_src then next_b_act_ns else next_a_act_ns end as peer_act_ns,
        case when is_a_src then next_a_close_ns else next_b_close_ns end as own_close_ns,
        case when is_a_src then next_a_close_code else next_b_close_code end // 2 as own_close_idx,
        case when is_a_src then next_b_close_code else next_a_close_code end // 2 as peer_close_idx
    from pass2
    where proto_num = 6
),

expiry as (
    select
        group_id,
        pkt_idx as from_idx,
        next_hard_idx,
        case
            -- why: the attempt timer removes a connection 5 s after the originator's SYN if the
            -- originator is still in SYN_SENT and the responder silent (AttemptTimer)
            when is_syn and not is_fin and not is_rst and (not is_ack or not flips_if_first)
                and coalesce(own_close_ns >= ts_ns + 5000000000, true)
                and coalesce(
                    case when is_ack then peer_first_ns else peer_act_ns end >= ts_ns + 5000000000,
                    true
                )
                then idx_after_5s
            -- why: once the close is complete (a RST, both sides closed, or one side closed
            -- while the other never sent), the connection is deleted tcp_close_delay = 5 s later
            else least(
                case
                    when own_close_code % 2 = 0
                        or peer_close_idx < own_close_idx
                        or peer_first_idx is null
                        or peer_first_idx > own_close_idx
                        then own_close_after_5s
                end,
                case
                    when peer_close_code % 2 = 0 or own_close_idx < peer_close_idx
                        then peer_close_after_5s
                end
            )
        end as next_idx
    from relative
),

next_starts as materialized (
    select group_id, from_idx, next_idx
    from expiry
    where next_idx is not null and (next_hard_idx is null or next_idx < next_hard_idx)
),

-- walk from every TCP segment start through the timer expiries
chain as (
    select group_id, pkt_idx as start_idx, 0 as depth
    from hard_starts
    where is_hard_start and group_id in (select group_id from next_starts)
    union all
    select n.group_id, n.next_idx as start_idx, c.depth + 1 as depth
    from chain as c
    inner join next_starts as n on n.group_id = c.group_id and n.from_idx = c.start_idx
),

timer_starts as (
    select distinct group_id, start_idx from chain where depth > 0
),

-- pass 3: number the connections and carry each one's first packet
pass3 as (
    select
        *,
        (sum(is_conn_start::integer) over w)::bigint as conn_no,
        last_value(case when is_conn_start then is_a_src end ignore nulls) over w
            as first_is_a_src,
        last_value(case when is_conn_start then flips_if_first end ignore nulls) over w
            as is_flipped
    from (
        select
            p.*,
            p.is_hard_start or t.start_idx is not null as is_conn_start
        from hard_starts as p
        left join timer_starts as t
            on t.group_id = p.group_id and t.start_idx = p.pkt_idx
    )
    window w as (
        partition by group_id order by ts_ns, frame_no
        rows between unbounded preceding and current row
    )
),

final as (
    select
        group_id,
        conn_no,
        pkt_idx,
        proto_num,
        frame_no,
        ts,
        ts_ns,
        iface,
        is_flipped,
        -- why: the originator is the sender of the connection's first packet, unless flipped
        is_a_src = (first_is_a_src <> is_flipped) as is_orig,
        is_a_src,
        is_syn,
        is_ack,
        is_fin,
        is_rst,
        seq,
        ack,
        "window",
        ip_len,
        payload_len
    from pass3
)

select * from final

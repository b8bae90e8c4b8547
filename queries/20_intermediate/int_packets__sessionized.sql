-- question: Which connection (Zeek semantics) does each packet belong to, and did its originator send it?
-- grain: one row per keyed IP packet
-- inputs: int_packets__keyed
--
-- A connection is a run of packets of one flow key in one capture file. A new one starts where
-- Zeek would start one (TCPSessionAdapter.cc, IPBasedAnalyzer.cc, init-bare.zeek):
--   1. the first packet of the key;
--   2. after inactivity: 5 min for TCP, 1 min for UDP, ICMP and other IP protocols;
--   3. TCP reuse: a SYN without ACK after a FIN/RST, or with a sequence number other than the
--      previous SYN of the same side (IsReuse);
--   4. TCP timers that remove a connection: the attempt timer (5 s after an unanswered SYN) and
--      the close delay (5 s after the close completed); the packet after the removal opens a new
--      connection. Timers chain (SYN retransmissions give several S0 connections), so the starts
--      are found by walking, per segment, from each start to the packet after its expiry.
with recursive keyed as (
    select * from int_packets__keyed
),

grouped as (
    select
        *,
        dense_rank() over (
            order by bundle_id, node, source_file, proto_num, is_one_way, a_ip, a_port, b_ip, b_port
        ) as group_id,
        proto_num = 6 and is_syn and not is_ack as is_pure_syn,
        -- why: Zeek flips a new connection to make a likely server port the responder port
        -- (likely_server_ports of its default analyzers) when the first packet is not a pure
        -- SYN; never towards the limited broadcast address (IPBasedAnalyzer::NewConn)
        case
            when proto_num = 6 then list_contains(
                [21, 22, 25, 53, 79, 80, 81, 88, 110, 135, 139, 143, 389, 443, 445, 502, 563,
                 585, 587, 614, 631, 636, 989, 990, 992, 993, 995, 1080, 1434, 1883, 2811, 3128,
                 3268, 3306, 3389, 5222, 5223, 5269, 5432, 6379, 6666, 6667, 6668, 6669, 8000,
                 8080, 8888, 20000],
                sport
            )
            when proto_num = 17 then list_contains(
                [53, 67, 88, 123, 137, 161, 162, 389, 443, 514, 547, 1812, 2123, 2152, 3544,
                 4789, 5060, 5072, 5353, 5355, 6081, 20000],
                sport
            )
            else false
        end as is_sport_likely_server,
        case
            when proto_num = 6 then list_contains(
                [21, 22, 25, 53, 79, 80, 81, 88, 110, 135, 139, 143, 389, 443, 445, 502, 563,
                 585, 587, 614, 631, 636, 989, 990, 992, 993, 995, 1080, 1434, 1883, 2811, 3128,
                 3268, 3306, 3389, 5222, 5223, 5269, 5432, 6379, 6666, 6667, 6668, 6669, 8000,
                 8080, 8888, 20000],
                dport
            )
            when proto_num = 17 then list_contains(
                [53, 67, 88, 123, 137, 161, 162, 389, 443, 514, 547, 1812, 2123, 2152, 3544,
                 4789, 5060, 5072, 5353, 5355, 6081, 20000],
                dport
            )
            else false
        end as is_dport_likely_server
    from keyed
),

flip_rule as (
    select
        *,
        dst_ip <> '255.255.255.255'
        and case
            when proto_num = 6 then not is_pure_syn and is_sport_likely_server
                and (not is_dport_likely_server or (not is_syn and sport < dport))
            when proto_num = 17 then is_sport_likely_server and not is_dport_likely_server
            else false
        end as flips_if_first
    from grouped
),

ordered as (
    select
        *,
        row_number() over w as pkt_idx,
        ts_ns - lag(ts_ns) over w as gap_ns,
        sum((is_fin or is_rst)::integer) over w as closes_incl
    from flip_rule
    window w as (
        partition by group_id order by ts_ns, frame_no
        rows between unbounded preceding and current row
    )
),

syn_context as (
    select
        *,
        last_value(case when is_pure_syn then seq end ignore nulls) over w as prev_syn_seq,
        last_value(case when is_pure_syn then is_a_src end ignore nulls) over w as prev_syn_from_a,
        last_value(case when is_pure_syn then closes_incl end ignore nulls) over w
            as prev_syn_closes
    from ordered
    window w as (
        partition by group_id order by ts_ns, frame_no
        rows between unbounded preceding and 1 preceding
    )
),

hard_starts as (
    select
        *,
        case
            when pkt_idx = 1 then true
            -- why: inactivity timeouts (tcp_inactivity_timeout 5 min, udp/icmp/unknown 1 min)
            when gap_ns >= (case when proto_num = 6 then 300 else 60 end)::bigint * 1000000000 then true
            -- why: a SYN is a new connection unless it repeats the last SYN of the same side
            -- with no FIN/RST since (TCPSessionAdapter::IsReuse)
            when is_pure_syn then not coalesce(
                prev_syn_seq = seq
                and prev_syn_from_a = is_a_src
                and prev_syn_closes = closes_incl - (is_fin or is_rst)::integer,
                false
            )
            else false
        end as is_hard_start
    from syn_context
),

segmented as (
    select
        *,
        sum(is_hard_start::integer) over (
            partition by group_id order by ts_ns, frame_no
            rows between unbounded preceding and current row
        ) as seg_no
    from hard_starts
),

-- first events at or after each packet, per side, within its segment
ahead as (
    select
        *,
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
        -- the first packet at least 5 s (the attempt timer and tcp_close_delay) later
        min(pkt_idx) over (
            partition by group_id, seg_no order by ts_ns
            range between 5000000000 following and unbounded following
        ) as idx_after_5s
    from segmented
    window w as (
        partition by group_id, seg_no order by ts_ns, frame_no
        rows between current row and unbounded following
    )
),

-- the events seen from a connection that would start at this packet: "own" is this packet's side
relative as (
    select
        *,
        case when is_a_src then next_a_close_code else next_b_close_code end as own_close_code,
        case when is_a_src then next_a_close_ns else next_b_close_ns end as own_close_ns,
        case when is_a_src then next_b_close_code else next_a_close_code end as peer_close_code,
        case when is_a_src then next_b_close_ns else next_a_close_ns end as peer_close_ns,
        case when is_a_src then next_b_idx else next_a_idx end as peer_first_idx,
        case when is_a_src then next_b_ns else next_a_ns end as peer_first_ns,
        case when is_a_src then next_b_act_ns else next_a_act_ns end as peer_act_ns
    from ahead
    where proto_num = 6
),

expiry as (
    select
        group_id,
        seg_no,
        pkt_idx,
        idx_after_5s,
        -- why: the attempt timer removes a connection 5 s after the originator's SYN if the
        -- originator is still in SYN_SENT and the responder silent (AttemptTimer)
        is_syn and not is_fin and not is_rst and (not is_ack or not flips_if_first)
        and coalesce(own_close_ns >= ts_ns + 5000000000, true)
        and coalesce(
            case when is_ack then peer_first_ns else peer_act_ns end >= ts_ns + 5000000000, true
        ) as is_attempt_expired,
        -- why: once the close is complete (a RST, both sides closed, or one side closed while
        -- the other never sent), the connection is deleted tcp_close_delay = 5 s later
        least(
            case
                when own_close_code % 2 = 0
                    or peer_close_code // 2 < own_close_code // 2
                    or peer_first_idx is null
                    or peer_first_idx > own_close_code // 2
                    then own_close_code // 2
            end,
            case
                when peer_close_code % 2 = 0 or own_close_code // 2 < peer_close_code // 2
                    then peer_close_code // 2
            end
        ) as close_complete_idx
    from relative
),

next_starts as (
    select
        e.group_id,
        e.seg_no,
        e.pkt_idx as from_idx,
        case when e.is_attempt_expired then e.idx_after_5s else c.idx_after_5s end as next_idx
    from expiry as e
    left join ahead as c
        on c.group_id = e.group_id
        and c.seg_no = e.seg_no
        and c.pkt_idx = e.close_complete_idx
    where e.is_attempt_expired or c.idx_after_5s is not null
),

chain as (
    select group_id, seg_no, pkt_idx as start_idx
    from segmented
    where is_hard_start
    union all
    select n.group_id, n.seg_no, n.next_idx as start_idx
    from chain as c
    inner join next_starts as n
        on n.group_id = c.group_id and n.seg_no = c.seg_no and n.from_idx = c.start_idx
),

started as (
    select
        s.*,
        c.start_idx is not null as is_conn_start
    from segmented as s
    left join (select distinct group_id, start_idx from chain) as c
        on c.group_id = s.group_id and c.start_idx = s.pkt_idx
),

numbered as (
    select
        *,
        sum(is_conn_start::integer) over (
            partition by group_id order by ts_ns, frame_no
            rows between unbounded preceding and current row
        ) as conn_no
    from started
),

first_packet as (
    select
        *,
        first_value(is_a_src) over w as first_is_a_src,
        first_value(flips_if_first) over w as is_flipped
    from numbered
    window w as (partition by group_id, conn_no order by ts_ns, frame_no)
),

final as (
    select
        bundle_id,
        node,
        source_file,
        frame_no,
        ts,
        ts_ns,
        iface,
        ip_version,
        proto_num,
        proto,
        group_id,
        conn_no,
        pkt_idx,
        is_flipped,
        -- why: the originator is the sender of the connection's first packet, unless flipped
        is_a_src = (first_is_a_src <> is_flipped) as is_orig,
        src_ip,
        dst_ip,
        sport,
        dport,
        is_syn,
        is_ack,
        is_fin,
        is_rst,
        seq,
        ack,
        "window",
        ip_len,
        payload_len,
        is_truncated,
        is_inner
    from first_packet
)

select * from final

-- question: What does each packet add to its connection's Zeek history, byte counts and state?
-- grain: one row per keyed IP packet (with its connection and direction)
-- inputs: int_packets__sessionized
--
-- Sequence numbers are unwrapped per direction (each step is a signed 32-bit difference) and made
-- relative to the direction's start: its first SYN, or one before its first packet when no SYN was
-- seen (Zeek's partial-connection convention), so relative byte 1 is the first payload byte.
-- A direction whose numbers span less than 2^31 and do not wrap is unwrapped by a subtraction;
-- only the others need the running sums.
-- All windows share one partition (the connection) and order; per-direction values are
-- conditional aggregates (o_ = originator's packets, r_ = responder's).
with packets as (
    select
        *,
        (is_syn::integer + is_fin::integer + is_rst::integer) as control_bits
    from int_packets__sessionized
),

-- why: per-connection and per-side facts are plain aggregates (hash GROUP BY); only what
-- depends on the packets before this one needs an ordered window, and those windows run per
-- side (partition by connection and direction) so one function serves both directions.
-- pkt_idx (the packet's position in its flow key) orders the packets of a connection.
conn_facts as (
    select
        group_id,
        conn_no,
        min(pkt_idx) as first_pkt_idx,
        arg_min(seq, pkt_idx) filter (where is_orig and seq is not null) as o_first_seq,
        arg_min(seq, pkt_idx) filter (where not is_orig and seq is not null) as r_first_seq,
        arg_min(seq, pkt_idx) filter (where is_orig and is_syn and seq is not null) as o_syn_seq,
        arg_min(seq, pkt_idx) filter (where not is_orig and is_syn and seq is not null)
            as r_syn_seq,
        arg_min(ack, pkt_idx) filter (where is_orig and is_ack and ack is not null)
            as o_first_ack,
        arg_min(ack, pkt_idx) filter (where not is_orig and is_ack and ack is not null)
            as r_first_ack,
        min(pkt_idx) filter (where is_orig) as orig_first_pkt,
        min(pkt_idx) filter (where not is_orig) as resp_first_pkt,
        min(pkt_idx) filter (where is_orig and (is_fin or is_rst)) as orig_close_pkt,
        min(pkt_idx) filter (where not is_orig and (is_fin or is_rst)) as resp_close_pkt,
        min(pkt_idx) filter (where is_orig and is_fin) as orig_fin_pkt,
        min(pkt_idx) filter (where not is_orig and is_fin) as resp_fin_pkt,
        min(pkt_idx) filter (where is_orig and is_rst) as orig_rst_pkt,
        min(pkt_idx) filter (where not is_orig and is_rst) as resp_rst_pkt,
        min(pkt_idx) filter (where not is_orig and is_syn and is_ack) as synack_pkt,
        arg_min(is_syn and not is_ack and not is_fin and not is_rst, pkt_idx)
            filter (where is_orig) as orig_opens_with_syn
    from packets
    group by group_id, conn_no
),

-- the first packet of each once-per-side history letter (Zeek logs D, A, I and Q once)
side_facts as (
    select
        group_id,
        conn_no,
        is_orig,
        min(pkt_idx) filter (where control_bits = 0 and payload_len > 0) as first_data_pkt,
        min(pkt_idx) filter (where control_bits = 0 and payload_len = 0 and is_ack)
            as first_ack_pkt,
        min(pkt_idx) filter (where is_fin and is_rst) as first_fin_rst_pkt,
        min(pkt_idx) filter (where control_bits > 1 and not (is_fin and is_rst))
            as first_multi_flag_pkt,
        -- why: when every sequence (and acknowledgement) number of a side lies within 2^31 of
        -- the others without wrapping, each signed step is the plain difference, so the running
        -- sum of the steps is the number minus the side's first one (no ordered window needed)
        count(seq) in (0, count(*))
        and coalesce(max(seq) - min(seq) < 2147483648, true)
        and count(ack) filter (where is_ack) = count(*) filter (where is_ack)
        and coalesce(
            max(ack) filter (where is_ack) - min(ack) filter (where is_ack) < 2147483648, true
        ) as is_unwrapped
    from packets
    group by group_id, conn_no, is_orig
),

-- each side's start: its first SYN, else one before its first sequence number
conn_starts as (
    select
        *,
        coalesce(
            (((o_syn_seq - o_first_seq) % 4294967296 + 4294967296 + 2147483648) % 4294967296)
            - 2147483648,
            -1
        ) as o_start_u,
        coalesce(
            (((r_syn_seq - r_first_seq) % 4294967296 + 4294967296 + 2147483648) % 4294967296)
            - 2147483648,
            -1
        ) as r_start_u
    from conn_facts
),

facts as (
    select
        p.*,
        p.pkt_idx - c.first_pkt_idx + 1 as conn_idx,
        c.o_first_ack,
        c.r_first_ack,
        c.o_syn_seq,
        case when p.is_orig then c.o_first_seq else c.r_first_seq end as own_first_seq,
        case when p.is_orig then c.o_first_ack else c.r_first_ack end as own_first_ack,
        s.is_unwrapped,
        case when p.is_orig then c.o_start_u else c.r_start_u end as own_start_u,
        ((c.o_first_seq + c.o_start_u) % 4294967296 + 4294967296) % 4294967296 as orig_start_seq,
        ((c.r_first_seq + c.r_start_u) % 4294967296 + 4294967296) % 4294967296 as resp_start_seq,
        c.orig_first_pkt - c.first_pkt_idx + 1 as orig_first_idx,
        c.resp_first_pkt - c.first_pkt_idx + 1 as resp_first_idx,
        c.orig_close_pkt - c.first_pkt_idx + 1 as orig_close_idx,
        c.resp_close_pkt - c.first_pkt_idx + 1 as resp_close_idx,
        c.orig_fin_pkt - c.first_pkt_idx + 1 as orig_fin_idx,
        c.resp_fin_pkt - c.first_pkt_idx + 1 as resp_fin_idx,
        c.orig_rst_pkt - c.first_pkt_idx + 1 as orig_rst_idx,
        c.resp_rst_pkt - c.first_pkt_idx + 1 as resp_rst_idx,
        c.synack_pkt - c.first_pkt_idx + 1 as synack_idx,
        c.orig_opens_with_syn,
        coalesce(p.pkt_idx = s.first_data_pkt, false) as is_first_data,
        coalesce(p.pkt_idx = s.first_ack_pkt, false) as is_first_ack,
        coalesce(p.pkt_idx = s.first_fin_rst_pkt, false) as is_first_fin_rst,
        coalesce(p.pkt_idx = s.first_multi_flag_pkt, false) as is_first_multi_flag
    from packets as p
    inner join conn_starts as c using (group_id, conn_no)
    inner join side_facts as s using (group_id, conn_no, is_orig)
),

-- the sides that need running sums: the previous sequence/ack number of the same side
pass1 as (
    select
        *,
        last_value(seq ignore nulls) over wb as prev_seq,
        last_value(case when is_ack then ack end ignore nulls) over wb as prev_ack
    from facts
    where not is_unwrapped
    window wb as (
        partition by group_id, conn_no, is_orig order by pkt_idx
        rows between unbounded preceding and 1 preceding
    )
),

steps as (
    select
        *,
        -- signed 32-bit steps from the previous sequence/ack number of the same side
        (((seq - prev_seq) % 4294967296 + 4294967296 + 2147483648) % 4294967296) - 2147483648
            as seq_step,
        case
            when is_ack then
                (((ack - prev_ack) % 4294967296 + 4294967296 + 2147483648) % 4294967296)
                - 2147483648
        end as ack_step
    from pass1
),

-- unwrapped sequence and acknowledgement numbers: running sums of the steps, or (a side within
-- 2^31) the number minus the side's first one
unwrapped as (
    select
        * exclude (prev_seq, prev_ack, seq_step, ack_step),
        (sum(coalesce(seq_step, 0)) over wi)::bigint as seq_u,
        (sum(case when is_ack then coalesce(ack_step, 0) end) over wi)::bigint as ack_u
    from steps
    window wi as (
        partition by group_id, conn_no, is_orig order by pkt_idx
        rows between unbounded preceding and current row
    )
    union all by name
    select
        *,
        coalesce(seq - own_first_seq, 0) as seq_u,
        case when is_ack then ack - own_first_ack end as ack_u
    from facts
    where is_unwrapped
),

positioned as (
    select
        *,
        seq_u - own_start_u as rel_seq,
        case when is_orig then orig_rst_idx else resp_rst_idx end as own_rst_idx,
        case when is_orig then resp_fin_idx else orig_fin_idx end as peer_fin_idx,
        case when is_orig then resp_rst_idx else orig_rst_idx end as peer_rst_idx
    from unwrapped
),

acked as (
    select
        *,
        rel_seq + case when is_rst then 0 else payload_len end
        + is_syn::integer + is_fin::integer as rel_end,
        -- the acknowledgement in the peer's relative sequence space
        case
            when is_ack and proto_num = 6 then
                (((case when is_orig then o_first_ack else r_first_ack end)
                  - case when is_orig then resp_start_seq else orig_start_seq end)
                 % 4294967296 + 4294967296 + 2147483648) % 4294967296 - 2147483648
                + ack_u
        end as peer_rel_ack,
        -- why: zero windows count unless they come with or after the sender's RST, or after
        -- the peer closed (update_window)
        proto_num = 6
        and "window" = 0
        and not is_rst
        and coalesce(own_rst_idx >= conn_idx, true)
        and not (
            coalesce(peer_fin_idx < conn_idx, false)
            and not coalesce(peer_rst_idx < conn_idx, false)
        ) as is_zero_window
    from positioned
),

-- side pass: the highest sequence end before each packet, the side's initial last_seq, and its
-- last SYN-, FIN- and RST-only packet before this one (Zeek's hist_last_SYN/FIN/RST)
pass3 as (
    select
        * exclude (
            seq_u, ack_u, o_first_ack, r_first_ack, own_start_u, orig_start_seq, resp_start_seq,
            own_first_seq, own_first_ack, is_unwrapped
        ),
        max(rel_end) over wb as max_end_before,
        first_value(case when is_syn then rel_end else rel_seq end ignore nulls) over wall
            as init_last_seq,
        last_value(case when control_bits = 1 and is_syn then seq end ignore nulls) over wb
            as prev_syn_seq,
        last_value(
            case when control_bits = 1 and is_fin then (seq + payload_len) % 4294967296 end
            ignore nulls
        ) over wb as prev_fin_end,
        last_value(case when control_bits = 1 and is_rst then seq end ignore nulls) over wb
            as prev_rst_seq
    from acked
    window
        wb as (
            partition by group_id, conn_no, is_orig order by pkt_idx
            rows between unbounded preceding and 1 preceding
        ),
        wall as (
            partition by group_id, conn_no, is_orig order by pkt_idx
            rows between unbounded preceding and unbounded following
        )
),

last_seq as (
    select
        * exclude (
            prev_syn_seq, prev_fin_end, prev_rst_seq, is_first_data, is_first_ack,
            is_first_fin_rst, is_first_multi_flag
        ),
        greatest(init_last_seq, coalesce(max_end_before, init_last_seq)) as last_seq_before,
        case
            when proto_num <> 6 then null
            when control_bits > 1 and is_fin and is_rst then
                case when is_first_fin_rst then 'I' end
            when control_bits > 1 then
                case when is_first_multi_flag then 'Q' end
            when is_syn then
                case
                    when coalesce(prev_syn_seq <> seq, true)
                        then case when is_ack then 'H' else 'S' end
                end
            when is_fin then
                case
                    when coalesce(prev_fin_end <> (seq + payload_len) % 4294967296, true)
                        then 'F'
                end
            when is_rst then
                case when coalesce(prev_rst_seq <> seq, true) then 'R' end
            when payload_len > 0 then
                case when is_first_data then 'D' end
            when is_ack then
                case when is_first_ack then 'A' end
        end as flag_letter
    from pass3
),

events as materialized (
    select
        *,
        -- why: Zeek's update_last_seq calls a packet with payload that does not advance the
        -- highest sequence number a retransmission (not after the sender's RST, not for a FIN
        -- when only the SYN came before, not for a SYN/RST more than 1 MiB off)
        proto_num = 6
        and payload_len > 0
        and coalesce(own_rst_idx >= conn_idx, true)
        and rel_end <= last_seq_before
        and not (is_fin and last_seq_before = 1)
        and not ((is_syn or is_rst) and last_seq_before - rel_end > 1048576)
        as is_retransmission,
        proto_num = 6
        and payload_len > 0
        and not is_rst
        and rel_seq > coalesce(max_end_before, 1)
        as is_gap_candidate
    from last_seq
),

-- content gaps: sequence space between payload segments that no packet covered (worked out in
-- sequence order, only for the directions where a segment arrived beyond the highest one seen)
gap_directions as (
    select distinct group_id, conn_no, is_orig from events where is_gap_candidate
),

holes as (
    select
        group_id,
        conn_no,
        conn_idx,
        greatest(
            rel_seq - coalesce(
                max(rel_seq + payload_len) over (
                    partition by group_id, conn_no, is_orig order by rel_seq, ts_ns, frame_no
                    rows between unbounded preceding and 1 preceding
                ),
                1
            ),
            0
        ) as gap_bytes
    from events
    semi join gap_directions using (group_id, conn_no, is_orig)
    where proto_num = 6 and payload_len > 0 and not is_rst
),

-- 'g', 't' and 'w' are logged on the 1st, 10th, 100th, ... occurrence (per side; up to 10^5)
marks as (
    select
        e.group_id,
        e.conn_no,
        e.conn_idx,
        coalesce(h.gap_bytes, 0) as gap_bytes,
        e.is_zero_window,
        e.is_retransmission,
        sum(e.is_zero_window::integer) over w as zero_windows_so_far,
        sum(e.is_retransmission::integer) over w as retransmissions_so_far,
        sum((coalesce(h.gap_bytes, 0) > 0)::integer) over w as gaps_so_far
    from events as e
    left join holes as h using (group_id, conn_no, conn_idx)
    where e.is_zero_window or e.is_retransmission or h.gap_bytes > 0
    window w as (
        partition by e.group_id, e.conn_no, e.is_orig order by e.ts_ns, e.frame_no
        rows between unbounded preceding and current row
    )
),

lettered as (
    select
        e.*,
        coalesce(m.gap_bytes, 0) as gap_bytes,
        coalesce(e.flag_letter, '')
        || case
            when e.is_zero_window and m.zero_windows_so_far in (1, 10, 100, 1000, 10000, 100000)
                then 'W'
            else ''
        end
        || case
            when e.is_retransmission
                and m.retransmissions_so_far in (1, 10, 100, 1000, 10000, 100000)
                then 'T'
            else ''
        end
        || case
            when m.gap_bytes > 0 and m.gaps_so_far in (1, 10, 100, 1000, 10000, 100000) then 'G'
            else ''
        end as tcp_letters
    from events as e
    left join marks as m using (group_id, conn_no, conn_idx)
),

final as (
    select
        group_id,
        conn_no,
        conn_idx,
        proto_num,
        frame_no,
        ts,
        ts_ns,
        iface,
        is_orig,
        is_a_src,
        is_flipped,
        is_syn,
        is_ack,
        is_fin,
        is_rst,
        seq,
        ack,
        "window",
        ip_len,
        payload_len,
        rel_seq,
        rel_end,
        peer_rel_ack,
        is_retransmission,
        is_zero_window,
        gap_bytes,
        orig_first_idx,
        resp_first_idx,
        orig_close_idx,
        resp_close_idx,
        orig_fin_idx,
        resp_fin_idx,
        orig_rst_idx,
        resp_rst_idx,
        synack_idx,
        orig_opens_with_syn,
        o_syn_seq as orig_isn,
        -- why: a pure ACK from a responder that has not answered the SYN yet does not wake it
        -- up (Zeek's "eccentric TCP" rule), so it does not count as its first packet
        not is_orig
        and not (is_syn or is_fin or is_rst)
        and payload_len = 0
        and coalesce(orig_opens_with_syn, false)
        and coalesce(orig_close_idx > conn_idx, true) as is_passive_resp_ack,
        case
            when proto_num = 6 then
                case when is_orig then tcp_letters else lower(tcp_letters) end
            when proto_num = 17 and conn_idx = coalesce(
                case when is_orig then orig_first_idx else resp_first_idx end, 0
            )
                then case when is_orig then 'D' else 'd' end
            else ''
        end as letters
    from lettered
)

select * from final

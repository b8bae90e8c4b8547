-- question: What does each packet add to its connection's Zeek history, byte counts and state?
-- grain: one row per keyed IP packet (with its connection and direction)
-- inputs: int_packets__sessionized
--
-- Sequence numbers are unwrapped per direction (each step is a signed 32-bit difference) and made
-- relative to the direction's start: its first SYN, or one before its first packet when no SYN was
-- seen (Zeek's partial-connection convention), so relative byte 1 is the first payload byte.
-- All windows share one partition (the connection) and order; per-direction values are
-- conditional aggregates (o_ = originator's packets, r_ = responder's).
with packets as (
    select
        *,
        (is_syn::integer + is_fin::integer + is_rst::integer) as control_bits
    from int_packets__sessionized
),

pass1 as (
    select
        *,
        row_number() over w as conn_idx,
        last_value(case when is_orig then seq end ignore nulls) over wb as o_prev_seq,
        last_value(case when not is_orig then seq end ignore nulls) over wb as r_prev_seq,
        last_value(case when is_orig and is_ack then ack end ignore nulls) over wb as o_prev_ack,
        last_value(case when not is_orig and is_ack then ack end ignore nulls) over wb
            as r_prev_ack,
        first_value(case when is_orig then seq end ignore nulls) over wall as o_first_seq,
        first_value(case when not is_orig then seq end ignore nulls) over wall as r_first_seq,
        first_value(case when is_orig and is_syn then seq end ignore nulls) over wall
            as o_syn_seq,
        first_value(case when not is_orig and is_syn then seq end ignore nulls) over wall
            as r_syn_seq,
        first_value(case when is_orig and is_ack then ack end ignore nulls) over wall
            as o_first_ack,
        first_value(case when not is_orig and is_ack then ack end ignore nulls) over wall
            as r_first_ack,
        -- the last SYN-, FIN- and RST-only packet of each side (Zeek's hist_last_SYN/FIN/RST)
        last_value(case when is_orig and control_bits = 1 and is_syn then seq end ignore nulls)
            over wb as o_prev_syn_seq,
        last_value(case when not is_orig and control_bits = 1 and is_syn then seq end ignore nulls)
            over wb as r_prev_syn_seq,
        last_value(
            case
                when is_orig and control_bits = 1 and is_fin
                    then (seq + payload_len) % 4294967296
            end
            ignore nulls
        ) over wb as o_prev_fin_end,
        last_value(
            case
                when not is_orig and control_bits = 1 and is_fin
                    then (seq + payload_len) % 4294967296
            end
            ignore nulls
        ) over wb as r_prev_fin_end,
        last_value(case when is_orig and control_bits = 1 and is_rst then seq end ignore nulls)
            over wb as o_prev_rst_seq,
        last_value(case when not is_orig and control_bits = 1 and is_rst then seq end ignore nulls)
            over wb as r_prev_rst_seq,
        -- packets of each once-per-side history letter so far (this one included)
        sum((is_orig and control_bits = 0 and payload_len > 0)::integer) over wi as o_data_pkts,
        sum((not is_orig and control_bits = 0 and payload_len > 0)::integer) over wi
            as r_data_pkts,
        sum((is_orig and control_bits = 0 and payload_len = 0 and is_ack)::integer) over wi
            as o_ack_pkts,
        sum((not is_orig and control_bits = 0 and payload_len = 0 and is_ack)::integer) over wi
            as r_ack_pkts,
        sum((is_orig and is_fin and is_rst)::integer) over wi as o_fin_rst_pkts,
        sum((not is_orig and is_fin and is_rst)::integer) over wi as r_fin_rst_pkts,
        sum((is_orig and control_bits > 1 and not (is_fin and is_rst))::integer) over wi
            as o_multi_flag_pkts,
        sum((not is_orig and control_bits > 1 and not (is_fin and is_rst))::integer) over wi
            as r_multi_flag_pkts
    from packets
    window
        w as (partition by group_id, conn_no order by ts_ns, frame_no),
        wb as (
            partition by group_id, conn_no order by ts_ns, frame_no
            rows between unbounded preceding and 1 preceding
        ),
        wi as (
            partition by group_id, conn_no order by ts_ns, frame_no
            rows between unbounded preceding and current row
        ),
        wall as (
            partition by group_id, conn_no order by ts_ns, frame_no
            rows between unbounded preceding and unbounded following
        )
),

own as (
    select
        *,
        -- signed 32-bit steps from the previous sequence/ack number of the same side
        (((seq - case when is_orig then o_prev_seq else r_prev_seq end)
          % 4294967296 + 4294967296 + 2147483648) % 4294967296) - 2147483648 as seq_step,
        case
            when is_ack then
                (((ack - case when is_orig then o_prev_ack else r_prev_ack end)
                  % 4294967296 + 4294967296 + 2147483648) % 4294967296) - 2147483648
        end as ack_step,
        -- each side's start: its first SYN, else one before its first sequence number
        coalesce(
            (((o_syn_seq - o_first_seq) % 4294967296 + 4294967296 + 2147483648) % 4294967296)
            - 2147483648,
            -1
        ) as o_start_u,
        coalesce(
            (((r_syn_seq - r_first_seq) % 4294967296 + 4294967296 + 2147483648) % 4294967296)
            - 2147483648,
            -1
        ) as r_start_u,
        case
            when proto_num <> 6 then null
            when control_bits > 1 and is_fin and is_rst then
                case
                    when (case when is_orig then o_fin_rst_pkts else r_fin_rst_pkts end) = 1
                        then 'I'
                end
            when control_bits > 1 then
                case
                    when (case when is_orig then o_multi_flag_pkts else r_multi_flag_pkts end) = 1
                        then 'Q'
                end
            when is_syn then
                case
                    when coalesce(
                        (case when is_orig then o_prev_syn_seq else r_prev_syn_seq end) <> seq, true
                    )
                        then case when is_ack then 'H' else 'S' end
                end
            when is_fin then
                case
                    when coalesce(
                        (case when is_orig then o_prev_fin_end else r_prev_fin_end end)
                        <> (seq + payload_len) % 4294967296,
                        true
                    )
                        then 'F'
                end
            when is_rst then
                case
                    when coalesce(
                        (case when is_orig then o_prev_rst_seq else r_prev_rst_seq end) <> seq, true
                    )
                        then 'R'
                end
            when payload_len > 0 then
                case when (case when is_orig then o_data_pkts else r_data_pkts end) = 1 then 'D' end
            when is_ack then
                case when (case when is_orig then o_ack_pkts else r_ack_pkts end) = 1 then 'A' end
        end as flag_letter
    from pass1
),

pass2 as (
    select
        * exclude (
            o_prev_seq, r_prev_seq, o_prev_ack, r_prev_ack, o_prev_syn_seq, r_prev_syn_seq,
            o_prev_fin_end, r_prev_fin_end, o_prev_rst_seq, r_prev_rst_seq, o_data_pkts,
            r_data_pkts, o_ack_pkts, r_ack_pkts, o_fin_rst_pkts, r_fin_rst_pkts,
            o_multi_flag_pkts, r_multi_flag_pkts
        ),
        (sum(case when is_orig then coalesce(seq_step, 0) end) over wi)::bigint as o_seq_u,
        (sum(case when not is_orig then coalesce(seq_step, 0) end) over wi)::bigint as r_seq_u,
        (sum(case when is_orig and is_ack then coalesce(ack_step, 0) end) over wi)::bigint
            as o_ack_u,
        (sum(case when not is_orig and is_ack then coalesce(ack_step, 0) end) over wi)::bigint
            as r_ack_u,
        min(case when is_orig then conn_idx end) over wall as orig_first_idx,
        min(case when not is_orig then conn_idx end) over wall as resp_first_idx,
        min(case when is_orig and (is_fin or is_rst) then conn_idx end) over wall
            as orig_close_idx,
        min(case when not is_orig and (is_fin or is_rst) then conn_idx end) over wall
            as resp_close_idx,
        min(case when is_orig and is_fin then conn_idx end) over wall as orig_fin_idx,
        min(case when not is_orig and is_fin then conn_idx end) over wall as resp_fin_idx,
        min(case when is_orig and is_rst then conn_idx end) over wall as orig_rst_idx,
        min(case when not is_orig and is_rst then conn_idx end) over wall as resp_rst_idx,
        min(case when not is_orig and is_syn and is_ack then conn_idx end) over wall
            as synack_idx,
        first_value(
            case when is_orig then is_syn and not is_ack and not is_fin and not is_rst end
            ignore nulls
        ) over wall as orig_opens_with_syn
    from own
    window
        wi as (
            partition by group_id, conn_no order by ts_ns, frame_no
            rows between unbounded preceding and current row
        ),
        wall as (
            partition by group_id, conn_no order by ts_ns, frame_no
            rows between unbounded preceding and unbounded following
        )
),

positioned as (
    select
        *,
        case when is_orig then o_seq_u - o_start_u else r_seq_u - r_start_u end as rel_seq,
        ((o_first_seq + o_start_u) % 4294967296 + 4294967296) % 4294967296 as orig_start_seq,
        ((r_first_seq + r_start_u) % 4294967296 + 4294967296) % 4294967296 as resp_start_seq,
        case when is_orig then orig_rst_idx else resp_rst_idx end as own_rst_idx,
        case when is_orig then resp_fin_idx else orig_fin_idx end as peer_fin_idx,
        case when is_orig then resp_rst_idx else orig_rst_idx end as peer_rst_idx
    from pass2
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
                + case when is_orig then o_ack_u else r_ack_u end
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

pass3 as (
    select
        * exclude (
            o_seq_u, r_seq_u, o_ack_u, r_ack_u, o_first_seq, r_first_seq, o_first_ack,
            r_first_ack, o_start_u, r_start_u, seq_step, ack_step, orig_start_seq,
            resp_start_seq, r_syn_seq
        ),
        max(case when is_orig then rel_end end) over wb as o_max_end_before,
        max(case when not is_orig then rel_end end) over wb as r_max_end_before,
        first_value(case when is_orig then (case when is_syn then rel_end else rel_seq end) end
                    ignore nulls) over wall as o_init_last_seq,
        first_value(
            case when not is_orig then (case when is_syn then rel_end else rel_seq end) end
            ignore nulls
        ) over wall as r_init_last_seq
    from acked
    window
        wb as (
            partition by group_id, conn_no order by ts_ns, frame_no
            rows between unbounded preceding and 1 preceding
        ),
        wall as (
            partition by group_id, conn_no order by ts_ns, frame_no
            rows between unbounded preceding and unbounded following
        )
),

last_seq as (
    select
        *,
        greatest(
            case when is_orig then o_init_last_seq else r_init_last_seq end,
            coalesce(
                case when is_orig then o_max_end_before else r_max_end_before end,
                case when is_orig then o_init_last_seq else r_init_last_seq end
            )
        ) as last_seq_before
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
        and rel_seq > coalesce(case when is_orig then o_max_end_before else r_max_end_before end, 1)
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

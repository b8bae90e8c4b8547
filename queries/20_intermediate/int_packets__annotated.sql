-- question: What does each packet add to its connection's Zeek history, byte counts and state?
-- grain: one row per keyed IP packet (with its connection and direction)
-- inputs: int_packets__sessionized
--
-- Sequence numbers are unwrapped per direction (each step is a signed 32-bit difference) and made
-- relative to the direction's start: its first SYN, or one before its first packet when no SYN was
-- seen (Zeek's partial-connection convention), so relative byte 1 is the first payload byte.
with packets as (
    select * from int_packets__sessionized
),

steps as (
    select
        *,
        row_number() over wc as conn_idx,
        row_number() over wd as dir_idx,
        -- signed 32-bit difference to the previous sequence number of the same direction
        (((seq - lag(seq) over wd) % 4294967296 + 4294967296 + 2147483648) % 4294967296)
        - 2147483648 as seq_step,
        (is_syn::integer + is_fin::integer + is_rst::integer) as control_bits
    from packets
    window
        wc as (partition by group_id, conn_no order by ts_ns, frame_no),
        wd as (partition by group_id, conn_no, is_orig order by ts_ns, frame_no)
),

unwrapped as (
    select
        *,
        sum(coalesce(seq_step, 0)) over (
            partition by group_id, conn_no, is_orig order by ts_ns, frame_no
            rows between unbounded preceding and current row
        ) as seq_u,
        first_value(seq) over (
            partition by group_id, conn_no, is_orig order by ts_ns, frame_no
        ) as dir_first_seq
    from steps
),

started as (
    select
        *,
        coalesce(
            first_value(case when is_syn then seq_u end ignore nulls) over wd_all, -1
        ) as start_u
    from unwrapped
    window wd_all as (
        partition by group_id, conn_no, is_orig order by ts_ns, frame_no
        rows between unbounded preceding and unbounded following
    )
),

relative as (
    select
        *,
        seq_u - start_u as rel_seq,
        seq_u - start_u
        + case when is_rst then 0 else payload_len end
        + is_syn::integer + is_fin::integer as rel_end,
        ((dir_first_seq + start_u) % 4294967296 + 4294967296) % 4294967296 as start_seq
    from started
),

-- connection-level facts every packet needs (first events per side)
conn_facts as (
    select
        *,
        first_value(case when is_orig then start_seq end ignore nulls) over wc_all
            as orig_start_seq,
        first_value(case when not is_orig then start_seq end ignore nulls) over wc_all
            as resp_start_seq,
        min(case when is_orig then conn_idx end) over wc_all as orig_first_idx,
        min(case when not is_orig then conn_idx end) over wc_all as resp_first_idx,
        min(case when is_orig and (is_fin or is_rst) then conn_idx end) over wc_all
            as orig_close_idx,
        min(case when not is_orig and (is_fin or is_rst) then conn_idx end) over wc_all
            as resp_close_idx,
        min(case when is_orig and is_fin then conn_idx end) over wc_all as orig_fin_idx,
        min(case when not is_orig and is_fin then conn_idx end) over wc_all as resp_fin_idx,
        min(case when is_orig and is_rst then conn_idx end) over wc_all as orig_rst_idx,
        min(case when not is_orig and is_rst then conn_idx end) over wc_all as resp_rst_idx,
        first_value(
            case when is_orig then is_syn and not is_ack and not is_fin and not is_rst end
            ignore nulls
        ) over wc_all as orig_opens_with_syn,
        first_value(case when is_orig then (is_syn::integer + is_ack::integer * 2) end ignore nulls)
            over wc_all as orig_first_syn_ack_code,
        first_value(case when is_orig and is_syn then seq end ignore nulls) over wc_all
            as orig_isn
    from relative
    window wc_all as (
        partition by group_id, conn_no order by ts_ns, frame_no
        rows between unbounded preceding and unbounded following
    )
),

acks as (
    select
        *,
        case when is_orig then resp_start_seq else orig_start_seq end as peer_start_seq,
        (((ack - lag(ack) over wa) % 4294967296 + 4294967296 + 2147483648) % 4294967296)
        - 2147483648 as ack_step,
        first_value(ack) over wa as first_ack
    from conn_facts
    window wa as (partition by group_id, conn_no, is_orig, is_ack order by ts_ns, frame_no)
),

ack_relative as (
    select
        *,
        case
            when is_ack and proto_num = 6 and peer_start_seq is not null then
                (((first_ack - peer_start_seq) % 4294967296 + 4294967296 + 2147483648)
                 % 4294967296) - 2147483648
                + sum(coalesce(ack_step, 0)) over (
                    partition by group_id, conn_no, is_orig, is_ack order by ts_ns, frame_no
                    rows between unbounded preceding and current row
                )
        end as peer_rel_ack
    from acks
),

-- the state of the sender's own history counters before this packet
history_context as (
    select
        *,
        last_value(case when control_bits = 1 and is_syn then seq end ignore nulls) over wb
            as prev_syn_seq,
        last_value(
            case when control_bits = 1 and is_fin then (seq + payload_len) % 4294967296 end
            ignore nulls
        ) over wb as prev_fin_end,
        last_value(case when control_bits = 1 and is_rst then seq end ignore nulls) over wb
            as prev_rst_seq,
        max(rel_end) over wb as max_end_before,
        first_value(case when is_syn then rel_end else rel_seq end) over wd as init_last_seq,
        sum((control_bits = 0 and payload_len > 0)::integer) over wi as data_pkts_so_far,
        sum((control_bits = 0 and payload_len = 0 and is_ack)::integer) over wi
            as ack_pkts_so_far,
        sum((is_fin and is_rst)::integer) over wi as fin_rst_pkts_so_far,
        sum((control_bits > 1 and not (is_fin and is_rst))::integer) over wi
            as multi_flag_pkts_so_far,
        case when is_orig then resp_fin_idx else orig_fin_idx end as peer_fin_idx,
        case when is_orig then resp_rst_idx else orig_rst_idx end as peer_rst_idx,
        case when is_orig then orig_rst_idx else resp_rst_idx end as own_rst_idx
    from ack_relative
    window
        wb as (
            partition by group_id, conn_no, is_orig order by ts_ns, frame_no
            rows between unbounded preceding and 1 preceding
        ),
        wi as (
            partition by group_id, conn_no, is_orig order by ts_ns, frame_no
            rows between unbounded preceding and current row
        ),
        wd as (partition by group_id, conn_no, is_orig order by ts_ns, frame_no)
),

events as (
    select
        *,
        greatest(init_last_seq, coalesce(max_end_before, init_last_seq)) as last_seq_before,
        -- why: Zeek's update_last_seq calls a packet with payload that does not advance the
        -- highest sequence number a retransmission (not after the sender's RST, not for a FIN
        -- when only the SYN came before, not for a SYN/RST more than 1 MiB off)
        proto_num = 6
        and payload_len > 0
        and coalesce(own_rst_idx >= conn_idx, true)
        and rel_end - greatest(init_last_seq, coalesce(max_end_before, init_last_seq)) <= 0
        and not (is_fin and greatest(init_last_seq, coalesce(max_end_before, init_last_seq)) = 1)
        and not (
            (is_syn or is_rst)
            and abs(rel_end - greatest(init_last_seq, coalesce(max_end_before, init_last_seq)))
            > 1048576
        ) as is_retransmission,
        -- why: zero windows count unless they come with or after the sender's RST, or after
        -- the peer closed (update_window)
        proto_num = 6
        and "window" = 0
        and not is_rst
        and coalesce(own_rst_idx >= conn_idx, true)
        and not (
            coalesce(peer_fin_idx < conn_idx, false)
            and not coalesce(peer_rst_idx < conn_idx, false)
        ) as is_zero_window,
        case
            when proto_num <> 6 then null
            when control_bits > 1 and is_fin and is_rst then
                case when fin_rst_pkts_so_far = 1 then 'I' end
            when control_bits > 1 then case when multi_flag_pkts_so_far = 1 then 'Q' end
            when is_syn then
                case
                    when prev_syn_seq is null or prev_syn_seq <> seq
                        then case when is_ack then 'H' else 'S' end
                end
            when is_fin then
                case
                    when prev_fin_end is null or prev_fin_end <> (seq + payload_len) % 4294967296
                        then 'F'
                end
            when is_rst then case when prev_rst_seq is null or prev_rst_seq <> seq then 'R' end
            when payload_len > 0 then case when data_pkts_so_far = 1 then 'D' end
            when is_ack then case when ack_pkts_so_far = 1 then 'A' end
        end as flag_letter
    from history_context
),

-- content gaps: sequence space between payload segments that no packet of the capture covered
data_segments as (
    select
        group_id,
        conn_no,
        is_orig,
        frame_no,
        ts_ns,
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
    where proto_num = 6 and payload_len > 0 and not is_rst
),

counted as (
    select
        e.*,
        coalesce(g.gap_bytes, 0) as gap_bytes,
        sum(e.is_retransmission::integer) over wi as retransmissions_so_far,
        sum(e.is_zero_window::integer) over wi as zero_windows_so_far,
        sum((coalesce(g.gap_bytes, 0) > 0)::integer) over wi as gaps_so_far
    from events as e
    left join data_segments as g
        on g.group_id = e.group_id
        and g.conn_no = e.conn_no
        and g.is_orig = e.is_orig
        and g.frame_no = e.frame_no
        and g.ts_ns = e.ts_ns
    window wi as (
        partition by e.group_id, e.conn_no, e.is_orig order by e.ts_ns, e.frame_no
        rows between unbounded preceding and current row
    )
),

lettered as (
    select
        *,
        -- why: 'c', 'g', 't' and 'w' are logged on the 1st, 10th, 100th, ... occurrence
        coalesce(flag_letter, '')
        || case
            when is_zero_window and list_contains(log_marks, zero_windows_so_far) then 'W'
            else ''
        end
        || case
            when is_retransmission and list_contains(log_marks, retransmissions_so_far) then 'T'
            else ''
        end
        || case
            when gap_bytes > 0 and list_contains(log_marks, gaps_so_far) then 'G'
            else ''
        end as tcp_letters
    from (
        select
            *,
            [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000]::bigint[] as log_marks
        from counted
    )
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
        conn_idx,
        dir_idx,
        is_orig,
        is_flipped,
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
        orig_opens_with_syn,
        orig_first_syn_ack_code,
        orig_isn,
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
            when proto_num = 17 and dir_idx = 1 then case when is_orig then 'D' else 'd' end
            else ''
        end as letters
    from lettered
)

select * from final

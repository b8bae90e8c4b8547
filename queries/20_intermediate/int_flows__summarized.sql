-- question: Which connections did one capture file see, summarised like Zeek's conn.log (before names are added)?
-- grain: one row per connection per capture file (a vantage point)
-- inputs: int_packets__annotated, int_packets__grouped
--
-- The per-capture part of `flows`: `natlens analyze` runs this SQL once per capture, in the pass
-- that decodes it (pipeline/capture/summaries.py), over that capture's packets alone, and stores
-- the rows as the capture's flows.parquet. Here it stays queryable live over every
-- loaded packet, to check the stored summaries against it.
--
-- Columns keep Zeek's names and meanings (base/protocols/conn/main.zeek): duration, orig_bytes
-- and resp_bytes are null when the connection lasted 0 s; TCP byte counts come from sequence
-- numbers (and the peer's acknowledgements); conn_state follows Zeek's conn_state() on the
-- endpoint states Zeek's TCP analyzer would reach. See docs/flows.md for the known differences.
with packets as (
    select * from int_packets__annotated
),

grouped as (
    select * from int_packets__grouped
),

per_conn as (
    select
        group_id,
        conn_no,
        any_value(proto_num) as ip_proto,
        any_value(is_flipped) as is_flipped,
        -- the originator is side "a" of the flow key when it sent the a-side packets
        any_value(is_orig = is_a_src) as orig_is_a,
        min(ts) as ts,
        min(ts_ns) as start_ns,
        arg_min(frame_no, conn_idx) as first_frame_no,
        arg_max(frame_no, conn_idx) as last_frame_no,
        nullif(array_to_string(list_sort(list_distinct(list(iface))), ','), '') as iface,
        count(*) filter (where is_orig) as orig_pkts,
        coalesce(sum(ip_len) filter (where is_orig), 0) as orig_ip_bytes,
        count(*) filter (where not is_orig) as resp_pkts,
        coalesce(sum(ip_len) filter (where not is_orig), 0) as resp_ip_bytes,
        coalesce(sum(payload_len) filter (where is_orig), 0) as orig_payload_bytes,
        coalesce(sum(payload_len) filter (where not is_orig), 0) as resp_payload_bytes,
        -- why: list_sort rather than ordered aggregates, which DuckDB cannot spill to disk
        array_to_string(
            [
                x.letters
                for x in list_sort(
                    list({'conn_idx': conn_idx, 'letters': letters})
                        filter (where coalesce(letters, '') <> '')
                )
            ],
            ''
        ) as history_letters,
        sum(gap_bytes) as hole_bytes,
        max(ts_ns) as last_ns,
        -- TCP endpoint facts
        any_value(orig_close_idx) as orig_close_idx,
        any_value(resp_close_idx) as resp_close_idx,
        any_value(orig_fin_idx) as orig_fin_idx,
        any_value(resp_fin_idx) as resp_fin_idx,
        any_value(orig_rst_idx) as orig_rst_idx,
        any_value(resp_rst_idx) as resp_rst_idx,
        any_value(orig_isn) as first_seq,
        any_value(orig_first_idx) as orig_first_idx,
        arg_min(is_syn::integer + is_ack::integer * 2, conn_idx) filter (where is_orig)
            as orig_first_code,
        any_value(resp_first_idx) as resp_first_idx,
        -- the responder's first packet that woke it up
        min(conn_idx) filter (where not is_orig and not is_passive_resp_ack) as resp_woke_idx,
        arg_min(is_syn::integer, conn_idx) filter (where not is_orig and not is_passive_resp_ack)
            as resp_woke_syn,
        max(rel_end) filter (where is_orig and coalesce(conn_idx <= orig_rst_idx, true))
            as orig_last_rel,
        max(rel_end) filter (where not is_orig and coalesce(conn_idx <= resp_rst_idx, true))
            as resp_last_rel,
        max(peer_rel_ack) filter (
            where not is_orig and is_ack and not is_rst and conn_idx > orig_first_idx
        ) as orig_acked_rel,
        max(peer_rel_ack) filter (
            where is_orig and is_ack and not is_rst and conn_idx > resp_first_idx
        ) as resp_acked_rel,
        count(*) filter (where is_orig and is_fin) as orig_fins,
        count(*) filter (where not is_orig and is_fin) as resp_fins,
        max(ts_ns) filter (where is_orig and is_syn and not is_ack and conn_idx < synack_idx)
            as syn_ns,
        min(ts_ns) filter (where conn_idx = synack_idx) as synack_ns,
        min(ts_ns) filter (where is_orig and is_ack and not is_syn and conn_idx > synack_idx)
            as handshake_ack_ns,
        max(ts_ns) filter (
            where conn_idx <= greatest(orig_close_idx, resp_close_idx)
        ) as closed_last_ns
    from packets
    group by group_id, conn_no
),

keyed as (
    select
        c.*,
        g.bundle_id,
        g.node,
        g.source_file,
        g.proto,
        case when c.orig_is_a then g.a_ip else g.b_ip end as orig_h,
        case when c.orig_is_a then g.a_port else g.b_port end as orig_p,
        case when c.orig_is_a then g.b_ip else g.a_ip end as resp_h,
        case when c.orig_is_a then g.b_port else g.a_port end as resp_p
    from per_conn as c
    inner join grouped as g using (group_id)
),

-- the last sequence/ack position of each side, as Zeek's TCP_Endpoint::Size() sees it
sized as (
    select
        *,
        greatest(coalesce(orig_last_rel, 0), coalesce(orig_acked_rel, 0), 0) as orig_span,
        greatest(coalesce(resp_last_rel, 0), coalesce(resp_acked_rel, 0), 0) as resp_span,
        -- why: Zeek's connection duration stops at the packet that closed the second side
        case
            when proto = 'tcp' and orig_close_idx is not null and resp_close_idx is not null
                then closed_last_ns
            else last_ns
        end as end_ns
    from keyed
),

endpoint_states as (
    select
        *,
        case
            when proto_num_is_tcp then
                case when orig_span = 0 then 0 else orig_span - 1 end
                - case when orig_fins > 0 and orig_span > 1 then 1 else 0 end
            else orig_payload_bytes
        end as orig_size,
        case
            when proto_num_is_tcp then
                case when resp_span = 0 then 0 else resp_span - 1 end
                - case when resp_fins > 0 and resp_span > 1 then 1 else 0 end
            else resp_payload_bytes
        end as resp_size,
        -- handshake states (before FIN/RST), TCPSessionAdapter::UpdateInactiveState
        case
            when orig_first_idx is null then 'INACTIVE'
            when orig_first_code = 1 then
                case when resp_woke_syn = 1 then 'ESTABLISHED' else 'SYN_SENT' end
            when orig_first_code = 3 then 'SYN_ACK_SENT'
            when orig_first_code >= 2 and resp_woke_syn = 1 and resp_woke_idx < orig_first_idx
                then 'ESTABLISHED'
            else 'PARTIAL'
        end as orig_open_state,
        case
            when resp_woke_idx is null then 'INACTIVE'
            when resp_woke_syn = 1 then 'ESTABLISHED'
            else 'PARTIAL'
        end as resp_open_state
    from (select *, proto = 'tcp' as proto_num_is_tcp from sized)
),

final_states as (
    select
        *,
        case
            when orig_rst_idx is not null then
                case
                    -- why: a RST after both sides sent FINs does not undo the close
                    when orig_fin_idx < orig_rst_idx and resp_fin_idx < orig_rst_idx
                        and coalesce(resp_rst_idx > orig_rst_idx, true)
                        then 'CLOSED'
                    -- why: FIN, RST, then the peer's FIN is a normal close after all
                    when orig_fin_idx < orig_rst_idx and resp_fin_idx > orig_rst_idx
                        and coalesce(resp_rst_idx > resp_fin_idx, true)
                        and resp_open_state in ('ESTABLISHED', 'PARTIAL')
                        then 'CLOSED'
                    else 'RESET'
                end
            when orig_fin_idx is not null then 'CLOSED'
            else orig_open_state
        end as orig_state,
        case
            when resp_rst_idx is not null then
                case
                    when resp_fin_idx < resp_rst_idx and orig_fin_idx < resp_rst_idx
                        and coalesce(orig_rst_idx > resp_rst_idx, true)
                        then 'CLOSED'
                    when resp_fin_idx < resp_rst_idx and orig_fin_idx > resp_rst_idx
                        and coalesce(orig_rst_idx > orig_fin_idx, true)
                        and orig_open_state in ('ESTABLISHED', 'PARTIAL')
                        then 'CLOSED'
                    else 'RESET'
                end
            when resp_fin_idx is not null then 'CLOSED'
            else resp_open_state
        end as resp_state,
        nullif(
            case when is_flipped then '^' else '' end || coalesce(history_letters, '')
            || case
                when proto = 'tcp' and coalesce(orig_acked_rel, 0) > coalesce(orig_last_rel, 0)
                    and orig_first_idx is not null
                    and coalesce(history_letters, '') not like '%G%'
                    then 'G'
                else ''
            end
            || case
                when proto = 'tcp' and coalesce(resp_acked_rel, 0) > coalesce(resp_last_rel, 0)
                    and resp_first_idx is not null
                    and coalesce(history_letters, '') not like '%g%'
                    then 'g'
                else ''
            end,
            ''
        ) as history
    from endpoint_states
),

states as materialized (
    select
        *,
        case
            when proto = 'tcp' then
                case
                    when resp_state = 'RESET' then
                        case
                            when orig_state in ('SYN_SENT', 'SYN_ACK_SENT')
                                or (orig_state = 'RESET' and orig_size = 0 and resp_size = 0)
                                then 'REJ'
                            when orig_state in ('INACTIVE', 'PARTIAL') then 'RSTRH'
                            else 'RSTR'
                        end
                    when orig_state = 'RESET' then
                        case
                            when resp_state in ('INACTIVE', 'PARTIAL') then
                                case
                                    when regexp_full_match(coalesce(history, ''), '\^?S[^HAFGIQ]*R.*')
                                        then 'RSTOS0'
                                    else 'OTH'
                                end
                            else 'RSTO'
                        end
                    when resp_state = 'CLOSED' and orig_state = 'CLOSED' then 'SF'
                    when orig_state = 'CLOSED' then
                        case when resp_state in ('INACTIVE', 'PARTIAL') then 'SH' else 'S2' end
                    when resp_state = 'CLOSED' then
                        case when orig_state in ('INACTIVE', 'PARTIAL') then 'SHR' else 'S3' end
                    when orig_state = 'SYN_SENT' and resp_state = 'INACTIVE' then 'S0'
                    when orig_state = 'ESTABLISHED' and resp_state = 'ESTABLISHED' then 'S1'
                    else 'OTH'
                end
            when proto = 'udp' then
                case
                    when orig_pkts > 0 and resp_pkts > 0 then 'SF'
                    when orig_pkts > 0 then 'S0'
                    when resp_pkts > 0 then 'SHR'
                    else 'OTH'
                end
            else 'OTH'
        end as conn_state,
        case
            when proto = 'tcp' then
                greatest(coalesce(orig_acked_rel, 0) - coalesce(orig_last_rel, 0), 0)
                + greatest(coalesce(resp_acked_rel, 0) - coalesce(resp_last_rel, 0), 0)
                + coalesce(hole_bytes, 0)
            else 0
        end as missed_bytes
    from final_states
),

-- Community ID v1 (seed 0): SHA1 over seed, both addresses, protocol, a zero byte and the ports,
-- the smaller address:port first; ICMP uses type and counterpart type (or code, then one-way)
addresses as (
    select distinct addr from (
        select orig_h as addr from states
        union all
        select resp_h as addr from states
    )
),

address_parts as (
    select
        addr,
        case
            when contains(addr, ':') then regexp_replace(addr, '\d+\.\d+\.\d+\.\d+$', '')
        end as v6_head,
        regexp_extract(addr, '(\d+\.\d+\.\d+\.\d+)$') as v4_tail
    from addresses
),

address_groups as (
    select
        addr,
        v6_head is null as is_v4,
        case
            when v6_head is null then null
            when v4_tail = '' then v6_head
            else v6_head || printf(
                '%x:%x',
                split_part(v4_tail, '.', 1)::integer * 256 + split_part(v4_tail, '.', 2)::integer,
                split_part(v4_tail, '.', 3)::integer * 256 + split_part(v4_tail, '.', 4)::integer
            )
        end as v6_text
    from address_parts
),

address_hex as (
    select
        addr,
        case
            when is_v4 then array_to_string(
                [printf('%02x', x::integer) for x in string_split(addr, '.')], ''
            )
            else array_to_string(
                [
                    lpad(lower(g), 4, '0')
                    for g in left_groups
                    || ['0' for x in range(8 - len(left_groups) - len(right_groups))]
                    || right_groups
                ],
                ''
            )
        end as addr_hex
    from (
        select
            addr,
            is_v4,
            case
                when is_v4 or split_part(v6_text, '::', 1) = '' then []::varchar[]
                else string_split(split_part(v6_text, '::', 1), ':')
            end as left_groups,
            case
                when is_v4 or not contains(v6_text, '::') or split_part(v6_text, '::', 2) = ''
                    then []::varchar[]
                else string_split(split_part(v6_text, '::', 2), ':')
            end as right_groups
        from address_groups
    )
),

hashed as (
    select
        s.*,
        o.addr_hex as orig_hex,
        r.addr_hex as resp_hex,
        ip_proto in (1, 6, 17, 58, 132) as has_ports,
        ip_proto in (1, 58) and (
            (ip_proto = 1 and orig_p not in (0, 8, 9, 10, 13, 14, 15, 16, 17, 18))
            or (ip_proto = 58 and orig_p not in (128, 129, 130, 131, 133, 134, 135, 136, 139,
                                                140, 144, 145))
        ) as is_one_way
    from states as s
    left join address_hex as o on o.addr = s.orig_h
    left join address_hex as r on r.addr = s.resp_h
),

community as (
    select
        *,
        -- why: uid only has to be stable and unique per capture file: a hash of where the
        -- connection's first packet is
        md5_number_lower(
            concat_ws('|', bundle_id, node, source_file, first_frame_no, ip_proto,
                      orig_h, orig_p, resp_h, resp_p)
        ) as uid_number,
        is_one_way
        or orig_hex < resp_hex
        or (orig_hex = resp_hex and has_ports and orig_p < resp_p) as is_ordered
    from hashed
),

final as (
    select
        ts,
        'C' || array_to_string(
            [
                substr(
                    '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
                    (uid_number // p % 62)::integer + 1,
                    1
                )
                for p in [839299365868340224, 13537086546263552, 218340105584896,
                          3521614606208, 56800235584, 916132832, 14776336, 238328, 3844, 62,
                          1]::ubigint[]
            ],
            ''
        ) as uid,
        orig_h,
        orig_p,
        resp_h,
        resp_p,
        proto,
        case when end_ns > start_ns then (end_ns - start_ns) / 1e9 end as duration,
        case when end_ns > start_ns then orig_size end as orig_bytes,
        case when end_ns > start_ns then resp_size end as resp_bytes,
        conn_state,
        history,
        missed_bytes,
        orig_pkts,
        orig_ip_bytes,
        resp_pkts,
        resp_ip_bytes,
        ip_proto,
        '1:' || to_base64(unhex(sha1(unhex(
            '0000'
            || case when is_ordered then orig_hex else resp_hex end
            || case when is_ordered then resp_hex else orig_hex end
            || printf('%02x', ip_proto)
            || '00'
            || case
                when not has_ports then ''
                when is_ordered then printf('%04x', orig_p) || printf('%04x', resp_p)
                else printf('%04x', resp_p) || printf('%04x', orig_p)
            end
        )))) as community_id,
        first_seq,
        (synack_ns - syn_ns) / 1e6 as rtt_syn_synack_ms,
        (handshake_ack_ns - synack_ns) / 1e6 as rtt_synack_ack_ms,
        bundle_id,
        node,
        source_file,
        iface,
        first_frame_no,
        last_frame_no
    from community
)

select * from final

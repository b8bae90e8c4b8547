-- question: Which direction-free flow key (Zeek's connection key) does each IP packet belong to?
-- grain: one row per IP packet that has a flow key (tcp/udp/sctp with ports, icmp, other IP)
-- inputs: stg_pcap__packets
with packets as (
    select * from stg_pcap__packets
    where ip_version is not null
        and src_ip is not null
        and dst_ip is not null
        and proto_num is not null
),

-- why: Zeek keys ICMP by (type, counterpart type) so that a request and its reply share one
-- connection (echo 8<->0, timestamp 13<->14, info 15<->16, router 10<->9, mask 17<->18;
-- ICMPv6 echo 128<->129, MLD 130<->131, router 133<->134, neighbour 135<->136, 139<->140,
-- 144<->145). Every other ICMP message is a one-way flow whose "ports" are type and code.
icmp_counterpart as (
    select
        *,
        case
            when proto_num = 1 then case icmp_type
                when 8 then 0 when 0 then 8 when 13 then 14 when 14 then 13
                when 15 then 16 when 16 then 15 when 10 then 9 when 9 then 10
                when 17 then 18 when 18 then 17
            end
            when proto_num = 58 then case icmp_type
                when 128 then 129 when 129 then 128 when 130 then 131 when 131 then 130
                when 133 then 134 when 134 then 133 when 135 then 136 when 136 then 135
                when 139 then 140 when 140 then 139 when 144 then 145 when 145 then 144
            end
        end as icmp_counter_type
    from packets
),

ported as (
    select
        *,
        case
            when proto_num in (6, 17, 132) then src_port
            when proto_num in (1, 58) then icmp_type
        end as sport,
        case
            when proto_num in (6, 17, 132) then dst_port
            when proto_num in (1, 58) then coalesce(icmp_counter_type, icmp_code)
        end as dport,
        proto_num in (1, 58) and icmp_counter_type is null as is_one_way
    from icmp_counterpart
    -- why: a non-first IP fragment has no ports; Zeek reassembles fragments first, natlens
    -- keeps the first fragment only (docs/flows.md)
    where (proto_num not in (6, 17, 132) or (src_port is not null and dst_port is not null))
        and (proto_num not in (1, 58) or icmp_type is not null)
),

oriented as (
    select
        *,
        is_one_way
        or src_ip < dst_ip
        or (src_ip = dst_ip and coalesce(sport, -1) <= coalesce(dport, -1)) as is_a_src
    from ported
),

-- why: Zeek flips a new connection so that a likely server port is the responder's when its
-- first packet is not a pure SYN (TCP) or for UDP, never towards the limited broadcast address
-- (TCPAnalyzer/UDPAnalyzer::WantConnection, IPBasedAnalyzer::NewConn). The ports are the
-- likely_server_ports of Zeek's default analyzers.
likely as (
    select
        *,
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
    from oriented
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
        case
            when proto_num = 6 then 'tcp'
            when proto_num = 17 then 'udp'
            when proto_num in (1, 58) then 'icmp'
            else proto
        end as proto,
        is_one_way,
        case when is_a_src then src_ip else dst_ip end as a_ip,
        case when is_a_src then sport else dport end as a_port,
        case when is_a_src then dst_ip else src_ip end as b_ip,
        case when is_a_src then dport else sport end as b_port,
        is_a_src,
        src_ip,
        dst_ip,
        sport,
        dport,
        dst_ip <> '255.255.255.255'
        and case
            when proto_num = 6 then
                not (coalesce(is_syn, false) and not coalesce(is_ack, false))
                and is_sport_likely_server
                and (not is_dport_likely_server or (not coalesce(is_syn, false) and sport < dport))
            when proto_num = 17 then is_sport_likely_server and not is_dport_likely_server
            else false
        end as flips_if_first,
        coalesce(is_syn, false) as is_syn,
        coalesce(is_ack, false) as is_ack,
        coalesce(is_fin, false) as is_fin,
        coalesce(is_rst, false) as is_rst,
        seq,
        ack,
        "window",
        ip_len,
        payload_len,
        is_truncated,
        is_inner
    from likely
)

select * from final

-- question: Which leg (one 5-tuple of one connection, as one node saw it on all its capture files) does each captured TCP/UDP packet belong to?
-- grain: one row per captured TCP/UDP packet copy (a frame of one capture file)
-- inputs: stg_pcap__packets, stg_host__addrs
-- materialized: true
--
-- A leg is one 5-tuple of an end-to-end connection: before NAT the client talks to the dialed
-- address (pre-NAT leg), after NAT the SNAT source talks to the backend (post-NAT leg). One
-- node may capture the same packet several times (`-i any` and the interface's own capture,
-- or on the way in and on the way out): all those copies belong to one leg of that node.
with packets as (
    select
        bundle_id,
        node,
        source_file,
        frame_no,
        ts_ns,
        link_type,
        iface,
        proto,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        ip_id,
        ip_len,
        payload_len,
        ttl,
        seq,
        ack,
        coalesce(tcp_flags_bits, 0) as flags,
        proto = 'tcp' and coalesce(is_syn and not is_ack, false) as is_pure_syn,
        -- direction-free key: the smaller endpoint first
        src_ip < dst_ip or (src_ip = dst_ip and src_port <= dst_port) as is_a_src
    from stg_pcap__packets
    where proto in ('tcp', 'udp')
        and src_ip is not null
        and dst_ip is not null
        and src_port is not null
        and dst_port is not null
),

interfaces as (
    select distinct bundle_id, node, ifindex, ifname
    from stg_host__addrs
    where ifindex is not null and ifname is not null
),

keyed as (
    select
        *,
        case when is_a_src then src_ip else dst_ip end as a_ip,
        case when is_a_src then src_port else dst_port end as a_port,
        case when is_a_src then dst_ip else src_ip end as b_ip,
        case when is_a_src then dst_port else src_port end as b_port,
        -- one number per node and direction-free tuple: cheaper to partition by than 7 columns
        hash(
            bundle_id, node, proto,
            case when is_a_src then src_ip else dst_ip end,
            case when is_a_src then src_port else dst_port end,
            case when is_a_src then dst_ip else src_ip end,
            case when is_a_src then dst_port else src_port end
        ) as tuple_key
    from packets
),

-- why: a new connection on the same tuple starts with a SYN carrying a new ISN (a repeated SYN
-- with the same ISN is a retransmission), or after Zeek's inactivity timeouts (TCP 5 min,
-- UDP 1 min); copies of one packet from several capture files interleave and change nothing
starts as (
    select
        *,
        case
            when lag(ts_ns) over w is null then true
            when ts_ns - lag(ts_ns) over w
                > (case when proto = 'tcp' then 300 else 60 end)::bigint * 1000000000
                then true
            when is_pure_syn then coalesce(
                seq <> last_value(case when is_pure_syn then seq end ignore nulls) over wb,
                true
            )
            else false
        end as is_leg_start
    from keyed
    window
        w as (
            partition by tuple_key
            order by ts_ns, source_file, frame_no
        ),
        wb as (
            partition by tuple_key
            order by ts_ns, source_file, frame_no
            rows between unbounded preceding and 1 preceding
        )
),

numbered as (
    select
        *,
        sum(is_leg_start::integer) over (
            partition by tuple_key
            order by ts_ns, source_file, frame_no
            rows between unbounded preceding and current row
        ) as leg_no
    from starts
),

-- why: the originator is the sender of the SYN; without a SYN in the capture, the sender of
-- the first packet seen (for UDP the first datagram). One aggregate per leg (cheaper than a
-- window over every packet); the leg id is a hash of the leg's tuple and first packet time.
leg_facts as (
    select
        tuple_key,
        leg_no,
        coalesce(
            arg_min(is_a_src, packet_order) filter (where is_pure_syn),
            arg_min(is_a_src, packet_order)
        ) as orig_is_a,
        min(ts_ns) as leg_first_ns,
        md5(
            concat_ws('|', any_value(bundle_id), any_value(node), any_value(proto),
                any_value(a_ip), any_value(a_port), any_value(b_ip), any_value(b_port),
                min(ts_ns))
        ) as leg_id
    from (
        select
            *,
            {'ts_ns': ts_ns, 'source_file': source_file, 'frame_no': frame_no} as packet_order
        from numbered
    )
    group by tuple_key, leg_no
),

oriented as (
    select
        n.*,
        f.orig_is_a,
        f.leg_first_ns,
        f.leg_id
    from numbered as n
    inner join leg_facts as f using (tuple_key, leg_no)
),

final as (
    select
        o.leg_id,
        o.bundle_id,
        o.node,
        o.proto,
        case when o.orig_is_a then o.a_ip else o.b_ip end as orig_h,
        case when o.orig_is_a then o.a_port else o.b_port end as orig_p,
        case when o.orig_is_a then o.b_ip else o.a_ip end as resp_h,
        case when o.orig_is_a then o.b_port else o.a_port end as resp_p,
        o.is_a_src = o.orig_is_a as is_from_orig,
        o.source_file,
        o.frame_no,
        o.ts_ns,
        o.link_type in ('sll', 'sll2') as is_any_capture,
        -- why: a `-i any` capture names each packet's ifindex, which the node's `ip addr`
        -- names; a single-interface pcap names no interface, and `tcpdump -i IF -w IF.pcap` is
        -- the usual convention, so its file stem is taken when the node has an interface of
        -- that name (heuristic, docs/connections.md)
        coalesce(
            by_index.ifname,
            by_file.ifname,
            case when o.link_type not in ('sll', 'sll2') then o.iface end
        ) as iface,
        o.src_ip,
        o.src_port,
        o.dst_ip,
        o.dst_port,
        o.ip_id,
        o.ip_len,
        o.payload_len,
        o.ttl,
        o.seq,
        o.ack,
        o.flags,
        o.is_pure_syn
    from oriented as o
    left join interfaces as by_index
        on o.link_type in ('sll', 'sll2')
        and by_index.bundle_id = o.bundle_id
        and by_index.node = o.node
        and by_index.ifindex::varchar = o.iface
    left join interfaces as by_file
        on o.link_type not in ('sll', 'sll2')
        and o.iface is null
        and by_file.bundle_id = o.bundle_id
        and by_file.node = o.node
        and by_file.ifname = regexp_extract(o.source_file, '([^/]+)\.(pcapng|pcap|cap)$', 1)
)

select * from final

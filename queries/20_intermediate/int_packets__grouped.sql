-- question: Which flow keys (a 5-tuple in both directions) does each capture file have, numbered?
-- grain: one row per flow key per capture file
-- inputs: int_packets__keyed
with keys as (
    select
        bundle_id,
        node,
        source_file,
        proto_num,
        is_one_way,
        a_ip,
        a_port,
        b_ip,
        b_port,
        any_value(proto) as proto,
        count(*) as packets
    from int_packets__keyed
    group by bundle_id, node, source_file, proto_num, is_one_way, a_ip, a_port, b_ip, b_port
),

final as (
    select
        row_number() over (
            order by bundle_id, node, source_file, proto_num, is_one_way, a_ip, a_port, b_ip, b_port
        ) as group_id,
        *
    from keys
)

select * from final

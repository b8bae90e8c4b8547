-- question: Which leg seen on the same node is each leg's other side of the NAT, from the packets alone, and is that pairing unique or ambiguous?
-- grain: one row per leg (the columns of int_legs__grouped), with its unique partner leg if it has one
-- inputs: int_legs__grouped
--
-- Only the node that translated a connection sees both of its tuples (the way in before NAT,
-- the way out after it), so candidates are pairs of legs on one node. See docs/connections.md
-- for which rules are exact and which are heuristics.
with legs as (
    select * from int_legs__grouped
),

-- Each leg offers one key per linking rule it can take part in; candidates come from one
-- equality (hash) join on those keys, so the work grows with the number of legs, not with the
-- legs inside a time window. The rules themselves are checked on the columns afterwards.
keyed as (
    -- why: NAT rewrites addresses and ports, never TCP sequence numbers: the SYN's ISN
    -- (32 random bits) names the connection on both sides
    select *, 'tcp isn' as match_rule, hash(isn) as link_key
    from legs
    where has_syn
    union all
    -- why: without a SYN on both sides, the first captured packet must be the same packet:
    -- the same IP ID, length, sequence and acknowledgement numbers and flags
    select
        *,
        'tcp first packet' as match_rule,
        hash(first_ip_id, first_ip_len, first_seq_no, first_ack_no, first_flags) as link_key
    from legs
    where proto = 'tcp' and first_is_from_orig
    union all
    -- why: UDP has no sequence numbers; the first datagram keeps its IP ID and length
    -- through NAT (heuristic: 16 bits of IP ID plus the length inside a 1 s window; IP ID 0
    -- from DF-flagged sockets makes every same-length datagram a candidate: ambiguous)
    select *, 'udp ip id+length+time' as match_rule, hash(first_ip_id, first_ip_len) as link_key
    from legs
    where proto = 'udp' and first_is_from_orig
),

candidates as (
    select
        a.bundle_id,
        a.node,
        a.proto,
        a.leg_id as pre_leg_id,
        b.leg_id as post_leg_id,
        a.match_rule,
        a.first_ip_id is not distinct from b.first_ip_id as is_ip_id_equal,
        a.reply_ip_id is not distinct from b.reply_ip_id
        and a.reply_ip_len is not distinct from b.reply_ip_len as is_reply_equal,
        b.first_ns - a.first_ns as gap_ns
    from keyed as a
    inner join keyed as b
        on b.link_key = a.link_key
        and b.match_rule = a.match_rule
        and b.bundle_id = a.bundle_id
        and b.node = a.node
        and b.proto = a.proto
    where
        not (
            b.orig_h = a.orig_h and b.orig_p = a.orig_p
            and b.resp_h = a.resp_h and b.resp_p = a.resp_p
        )
        -- why: the pre-NAT tuple is the one the translating node saw first: it captures the
        -- packet on the way in, before nat PREROUTING, and the post-NAT copy on the way out,
        -- after routing lowered its TTL. Two legs with the same TTL are not the two sides of
        -- one forwarding node (e.g. two connections reaching a backend's node).
        and b.first_ns >= a.first_ns
        and b.first_ttl < a.first_ttl
        -- why: forwarding takes microseconds; 5 s lets a SYN lost between the two capture
        -- points be replaced by its retransmission (same ISN), 1 s is plenty for one packet
        and b.first_ns
            <= a.first_ns + case when a.match_rule = 'tcp isn' then 5000000000 else 1000000000 end
        -- the keys are hashes: the rule's own fields must be equal
        and case a.match_rule
            when 'tcp isn' then a.isn = b.isn
            when 'tcp first packet' then
                not (a.has_syn and b.has_syn)
                and a.first_ip_id = b.first_ip_id
                and a.first_ip_len = b.first_ip_len
                and a.first_seq_no = b.first_seq_no
                and a.first_ack_no = b.first_ack_no
                and a.first_flags = b.first_flags
            else a.first_ip_id = b.first_ip_id and a.first_ip_len = b.first_ip_len
        end
),

-- why: tie-breakers between several candidates: the first packet seen on both sides is one
-- packet, so it has one IP ID (a SYN retransmitted between the capture points has another),
-- and so is the first packet back (the SYN-ACK, the UDP reply)
scored as (
    select
        *,
        is_ip_id_equal::integer + is_reply_equal::integer as score
    from candidates
),

counted as (
    select
        *,
        count(*) over (partition by pre_leg_id) as n_post_candidates,
        count(*) over (partition by post_leg_id) as n_pre_candidates,
        max(score) over (partition by pre_leg_id) as best_for_pre,
        max(score) over (partition by post_leg_id) as best_for_post
    from scored
),

-- a candidate is kept when it is the only one with the best score on both of its sides
tie_broken as (
    select
        *,
        score = best_for_pre
        and score = best_for_post
        and count(*) filter (where score = best_for_pre) over (partition by pre_leg_id) = 1
        and count(*) filter (where score = best_for_post) over (partition by post_leg_id) = 1
            as is_kept,
        (score = best_for_pre
            and count(*) filter (where score = best_for_pre) over (partition by pre_leg_id) > 1)
        or (score = best_for_post
            and count(*) filter (where score = best_for_post) over (partition by post_leg_id) > 1)
            as is_tied
    from counted
),

kept_counts as (
    select
        *,
        count(*) filter (where is_kept) over (partition by pre_leg_id) as n_kept_for_pre,
        count(*) filter (where is_kept) over (partition by post_leg_id) as n_kept_for_post
    from tie_broken
),

-- a leg that is the post-NAT side of one kept pair and the pre-NAT side of another (three
-- tuples on one node) is a chain this view does not resolve
kept_post_legs as (
    select distinct post_leg_id as leg_id from tie_broken where is_kept
),

kept_pre_legs as (
    select distinct pre_leg_id as leg_id from tie_broken where is_kept
),

chained as (
    select
        k.*,
        kp.leg_id is not null or kq.leg_id is not null as is_chained
    from kept_counts as k
    left join kept_post_legs as kp on kp.leg_id = k.pre_leg_id
    left join kept_pre_legs as kq on kq.leg_id = k.post_leg_id
),

pairs as (
    select
        pre_leg_id,
        post_leg_id,
        match_rule,
        is_kept and n_kept_for_pre = 1 and n_kept_for_post = 1 and not is_chained as is_unique,
        -- why: never guess: equally good candidates, or a chain of three tuples, leave both
        -- legs unlinked and reported as ambiguous
        is_tied or (is_kept and is_chained) as is_ambiguous
    from chained
),

sides as (
    select pre_leg_id as leg_id, 'pre_nat' as pair_role, post_leg_id as partner_leg_id, *
        exclude (pre_leg_id, post_leg_id)
    from pairs
    union all
    select post_leg_id as leg_id, 'post_nat' as pair_role, pre_leg_id as partner_leg_id, *
        exclude (pre_leg_id, post_leg_id)
    from pairs
),

per_leg as (
    select
        leg_id,
        -- a leg is in at most one unique pair
        any_value(pair_role) filter (where is_unique) as pair_role,
        any_value(partner_leg_id) filter (where is_unique) as partner_leg_id,
        any_value(match_rule) filter (where is_unique) as pair_rule,
        bool_or(is_ambiguous) as is_ambiguous,
        string_agg(distinct match_rule, ', ' order by match_rule) filter (where is_ambiguous)
            as ambiguous_rules,
        count(*) as n_candidates
    from sides
    group by leg_id
),

final as (
    select
        l.*,
        p.pair_role,
        p.partner_leg_id,
        p.pair_rule,
        coalesce(p.is_ambiguous, false) as is_ambiguous,
        p.ambiguous_rules,
        coalesce(p.n_candidates, 0) as n_candidates
    from legs as l
    left join per_leg as p using (leg_id)
)

select * from final

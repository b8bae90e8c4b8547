-- question: Is there a pre-NAT tuple that conntrack links to one post-NAT tuple and the packet captures to another?
-- grain: one row per pcap-only link whose pre-NAT tuple a conntrack translation on the same node links elsewhere (empty = pass)
-- inputs: int_connections__linked
with linked as (
    select * from int_connections__linked
)

select
    p.bundle_id,
    p.nat_node,
    p.proto,
    p.client_ip,
    p.client_port,
    p.dialed_ip,
    p.dialed_port,
    p.backend_ip || ':' || p.backend_port as pcap_backend,
    c.backend_ip || ':' || c.backend_port as conntrack_backend,
    p.snat_ip || ':' || p.snat_port as pcap_snat,
    c.snat_ip || ':' || c.snat_port as conntrack_snat,
    p.match_rule as pcap_rule
from linked as p
inner join linked as c
    on c.bundle_id = p.bundle_id
    and c.nat_node = p.nat_node
    and c.proto = p.proto
    and c.client_ip = p.client_ip
    and c.client_port = p.client_port
    and c.dialed_ip = p.dialed_ip
    and c.dialed_port = p.dialed_port
where not p.has_conntrack and c.has_conntrack

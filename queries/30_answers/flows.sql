-- question: Which connections did each capture file see, summarised like Zeek's conn.log?
-- grain: one row per connection per capture file (a vantage point)
-- inputs: stg_pcap__flows, int_k8s_addresses__named, int_k8s_service_ports__named, int_flows__services, int_flows__tunnel_parents, stg_host__addrs
--
-- The Zeek columns are computed once per capture when it is loaded (int_flows__summarized over
-- that capture alone, stored in its flows.parquet); this view adds the names from kubectl JSON,
-- which may arrive later.
-- Columns keep Zeek's names and meanings (base/protocols/conn/main.zeek): duration, orig_bytes
-- and resp_bytes are null when the connection lasted 0 s; see docs/flows.md. `service`,
-- `local_orig`/`local_resp` and `tunnel_parents` are Zeek's too, from what natlens knows:
-- the application messages recognised, the capturing node's own addresses (ip addr), and the
-- VXLAN/Geneve connections a tunnelled connection came out of.
with final as (
    select * from stg_pcap__flows
),

names as (
    select * from int_k8s_addresses__named
),

service_names as (
    select * from int_k8s_service_ports__named
),

services as (
    select * from int_flows__services
),

tunnels as (
    select * from int_flows__tunnel_parents
),

-- the capturing node's own addresses (null: the bundle has no `ip addr` output for it)
node_addrs as (
    select bundle_id, node, list(distinct local) as addrs
    from stg_host__addrs
    where local is not null
    group by bundle_id, node
),

-- with kubectl JSON in the bundle: the pod/node behind each end, the Service a client dialed
named as (
    select
        f.*,
        orig.name as orig_name,
        coalesce(svc.name, nodeport.name, resp.name) as resp_name
    from final as f
    left join names as orig on orig.bundle_id = f.bundle_id and orig.ip = f.orig_h
    left join names as resp on resp.bundle_id = f.bundle_id and resp.ip = f.resp_h
    left join service_names as svc
        on svc.bundle_id = f.bundle_id and svc.proto = f.proto and svc.ip = f.resp_h
        and svc.port = f.resp_p
    -- why: a NodePort answers on every node address; a pod's own address is never one
    left join service_names as nodeport
        on nodeport.bundle_id = f.bundle_id and nodeport.proto = f.proto and nodeport.ip = '*'
        and nodeport.port = f.resp_p and coalesce(resp.name, '') not like 'pod %'
),

zeek as (
    select
        n.*,
        s.service,
        list_contains(a.addrs, n.orig_h) as local_orig,
        list_contains(a.addrs, n.resp_h) as local_resp,
        coalesce(t.tunnel_parents, []::varchar[]) as tunnel_parents
    from named as n
    left join services as s
        on s.bundle_id = n.bundle_id and s.node = n.node and s.source_file = n.source_file
        and s.uid = n.uid
    left join tunnels as t
        on t.bundle_id = n.bundle_id and t.node = n.node and t.source_file = n.source_file
        and t.uid = n.uid
    left join node_addrs as a on a.bundle_id = n.bundle_id and a.node = n.node
)

select * from zeek
order by bundle_id, node, source_file, ts, first_frame_no, orig_h, orig_p

-- question: Is there a captured leg that more than one linked connection claims?
-- grain: one row per leg claimed by two or more linked connections (empty = pass)
-- inputs: int_connections__legs
with legs as (
    select * from int_connections__legs
)

select
    bundle_id,
    node,
    proto,
    orig_h,
    orig_p,
    resp_h,
    resp_p,
    source_file,
    count(distinct conn_id) as connections
from legs
where link_status = 'linked' and leg_id is not null
group by bundle_id, leg_id, node, proto, orig_h, orig_p, resp_h, resp_p, source_file
having count(distinct conn_id) > 1

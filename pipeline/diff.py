"""`natlens diff`: what changed between two bundles of one database, read from the answer views.

Each section is one SQL query over both bundles (`$old`, `$new`) that returns rows of
(change, subject, detail): `+` added / new, `-` removed / resolved, `~` shifted. Subjects are keyed
without the bundle (a file is named by its path inside the bundle, a finding by finding, node and
subject), so the same thing in two bundles is the same row.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from .scope import bundles_in_order

SHIFT_POINTS = 10  # a backend's share of its service moved by at least this many points

_SERVICES = """
    with services as (
        select distinct bundle_id, 'k8s' as source, proto, cluster_ip as ip, port,
            namespace || '/' || service || coalesce(' ' || port_name, '') as name
        from stg_k8s__service_ports where cluster_ip is not null and cluster_ip <> 'None'
        union
        select distinct bundle_id, 'ipvs', lower(proto), vip, vport, coalesce(fwmark::varchar, '')
        from ipvs_services
    ),
    old as (select * exclude (bundle_id) from services where bundle_id = $old),
    new as (select * exclude (bundle_id) from services where bundle_id = $new),
    final as (
        select '+' as change, source || ' ' || proto || ' ' || ip || ':' || port as subject,
            name as detail
        from (select * from new except select * from old)
        union all
        select '-', source || ' ' || proto || ' ' || ip || ':' || port, name
        from (select * from old except select * from new)
    )
    select * from final order by subject, change, detail"""

_BACKENDS = """
    with backends as (
        select distinct bundle_id, 'k8s' as source,
            namespace || '/' || service as service, proto, address as ip, port,
            coalesce(pod, '') as name
        from stg_k8s__endpoints
        union
        select distinct bundle_id, 'ipvs', service, lower(proto), backend_ip, backend_port, ''
        from ipvs_backends
    ),
    old as (select * exclude (bundle_id) from backends where bundle_id = $old),
    new as (select * exclude (bundle_id) from backends where bundle_id = $new),
    final as (
        select '+' as change,
            source || ' ' || service || ' -> ' || proto || ' ' || ip || ':' || port as subject,
            name as detail
        from (select * from new except select * from old)
        union all
        select '-', source || ' ' || service || ' -> ' || proto || ' ' || ip || ':' || port, name
        from (select * from old except select * from new)
    )
    select * from final order by subject, change, detail"""

# why: only services seen in both bundles; a service that came or went is listed above
_DISTRIBUTION = f"""
    with shares as (
        select * from backend_distribution where scope = 'all'
    ),
    old as (select * from shares where bundle_id = $old),
    new as (select * from shares where bundle_id = $new),
    both_seen as (
        select distinct proto, dialed_ip, dialed_port from old
        intersect
        select distinct proto, dialed_ip, dialed_port from new
    ),
    joined as (
        select coalesce(n.proto, o.proto) as proto,
            coalesce(n.dialed_ip, o.dialed_ip) as dialed_ip,
            coalesce(n.dialed_port, o.dialed_port) as dialed_port,
            coalesce(n.backend_ip, o.backend_ip) as backend_ip,
            coalesce(n.backend_port, o.backend_port) as backend_port,
            coalesce(o.share, 0) as old_share, coalesce(n.share, 0) as new_share,
            coalesce(o.connections, 0) as old_connections,
            coalesce(n.connections, 0) as new_connections
        from old as o
        full outer join new as n
            on n.proto = o.proto and n.dialed_ip = o.dialed_ip and n.dialed_port = o.dialed_port
            and n.backend_ip = o.backend_ip
            and n.backend_port is not distinct from o.backend_port
    ),
    final as (
        select '~' as change,
            j.proto || ' ' || j.dialed_ip || ':' || j.dialed_port || ' -> '
                || j.backend_ip || ':' || coalesce(j.backend_port::varchar, '-') as subject,
            printf('share %.0f%% -> %.0f%% (%d -> %d connections)', 100 * old_share,
                100 * new_share, old_connections, new_connections) as detail
        from joined as j
        semi join both_seen as b
            on b.proto = j.proto and b.dialed_ip = j.dialed_ip and b.dialed_port = j.dialed_port
        where abs(new_share - old_share) * 100 >= {SHIFT_POINTS}
    )
    select * from final order by subject"""

_SNAT_CLASSES = """
    with classes as (
        select distinct bundle_id, proto, dialed_ip, dialed_port, snat_class
        from connections where snat_class is not null
    ),
    old as (select * exclude (bundle_id) from classes where bundle_id = $old),
    new as (select * exclude (bundle_id) from classes where bundle_id = $new),
    final as (
        select '+' as change, proto || ' ' || dialed_ip || ':' || dialed_port as subject,
            snat_class as detail
        from (select * from new except select * from old)
        union all
        select '-', proto || ' ' || dialed_ip || ':' || dialed_port, snat_class
        from (select * from old except select * from new)
    )
    select * from final order by subject, change, detail"""

_FINDINGS = """
    with found as (
        select bundle_id, finding, severity, coalesce(node, '') as node,
            coalesce(subject, '') as subject, min(summary) as summary
        from findings group by all
    ),
    old as (select * from found where bundle_id = $old),
    new as (select * from found where bundle_id = $new),
    final as (
        select '+' as change, n.severity || ' ' || n.finding || ' ' || n.node || ' '
                || n.subject as subject, n.summary as detail
        from new as n anti join old as o
            on o.finding = n.finding and o.node = n.node and o.subject = n.subject
        union all
        select '-', o.severity || ' ' || o.finding || ' ' || o.node || ' ' || o.subject,
            'resolved: ' || o.summary
        from old as o anti join new as n
            on o.finding = n.finding and o.node = n.node and o.subject = n.subject
    )
    select * from final order by subject, change"""

# why: a bundle's files are under its id; the same file in the next bundle has the same rest
_REJECTED = """
    with rejected as (
        select bundle_id, node, regexp_replace(source_file, '^[^/]*/', '') as file, reason,
            count(*) as records
        from ingest_errors where severity = 'rejected'
        group by all
    ),
    old as (select * from rejected where bundle_id = $old),
    new as (select * from rejected where bundle_id = $new),
    final as (
        select '+' as change, n.file || ' (' || n.node || ')' as subject,
            printf('%d new: %s', n.records - coalesce(o.records, 0), n.reason) as detail
        from new as n left join old as o
            on o.node = n.node and o.file = n.file and o.reason = n.reason
        where n.records > coalesce(o.records, 0)
    )
    select * from final order by subject, detail"""

SECTIONS: dict[str, str] = {
    "Services": _SERVICES,
    "Backends": _BACKENDS,
    f"Distribution shifts (a backend's share moved by {SHIFT_POINTS} points or more)": (
        _DISTRIBUTION
    ),
    "SNAT classes": _SNAT_CLASSES,
    "Findings": _FINDINGS,
    "New rejected records": _REJECTED,
}


class DiffError(ValueError):
    """The database lacks the bundles asked for."""


@dataclass(frozen=True)
class Change:
    section: str
    change: str
    subject: str
    detail: str


def pick(con: duckdb.DuckDBPyConnection, old: str | None, new: str | None) -> tuple[str, str]:
    """The two bundles to compare; by default the two newest (oldest first: bundles_in_order)."""
    ordered = bundles_in_order(con)
    for bundle in (old, new):
        if bundle is not None and bundle not in ordered:
            known = ", ".join(ordered) or "none"
            raise DiffError(f"no bundle {bundle!r} in the database (bundles: {known})")
    if new is None:  # the bundle after --from, else the newest
        after = ordered[ordered.index(old) + 1 :] if old is not None else []
        new = after[0] if after else (ordered[-1] if ordered else None)
    if old is None and new is not None:  # the bundle before --to
        before = ordered[: ordered.index(new)]
        old = before[-1] if before else None
    if old is not None and old == new:
        raise DiffError(f"no other bundle to compare {old!r} with (bundles: {', '.join(ordered)})")
    if old is None and new is not None and len(ordered) > 1:
        raise DiffError(f"no bundle before {new!r} (bundles: {', '.join(ordered)})")
    if old is None or new is None:
        raise DiffError(
            f"diff needs two bundles; the database holds {len(ordered)} "
            f"({', '.join(ordered) or 'none'})"
        )
    return old, new


def changes(con: duckdb.DuckDBPyConnection, old: str, new: str) -> list[Change]:
    out = []
    for section, sql in SECTIONS.items():
        for change, subject, detail in con.execute(sql, {"old": old, "new": new}).fetchall():
            out.append(Change(section, str(change), str(subject), str(detail or "")))
    return out


def render(old: str, new: str, found: list[Change]) -> str:
    """Markdown: one section per kind of change, one line per change."""
    lines = [f"# natlens diff: {old} -> {new}", ""]
    for section in SECTIONS:
        lines += [f"## {section}", ""]
        rows = [c for c in found if c.section == section]
        if not rows:
            lines.append("No change.")
        for c in rows:
            lines.append(f"    {c.change} {c.subject}" + (f"  {c.detail}" if c.detail else ""))
        lines.append("")
    return "\n".join(lines)

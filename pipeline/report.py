"""Run the answer views the report needs and render reports/templates/report.md.j2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .db import CHECK_PREFIX, fetch_dicts, read_view_files
from .diagrams import connection_sequence, distribution_chart
from .output import QueryResult, markdown_table, md_escape, run_query
from .resources import templates_dir
from .scope import coverage

MAX_ERRORS_SHOWN = 20

# Each section: one query over answer views, ordered by a full key so output is deterministic.
SECTION_QUERIES: dict[str, str] = {
    "nodes": """
        select node, count(*) as files,
            count(*) filter (where status = 'loaded') as loaded,
            count(*) filter (where status = 'skipped') as skipped,
            count(*) filter (where status = 'failed') as failed,
            sum(records_read) as records_read, sum(records_parsed) as records_parsed,
            sum(records_rejected) as records_rejected
        from ingest_files group by node order by node""",
    "files": """
        select node, source_file as file, kind, records_read as "read",
            records_parsed as parsed, records_rejected as rejected, status,
            coalesce(reason, '') as reason
        from ingest_files order by bundle_id, node, source_file""",
    "ipvs_agreement": """
        select service, n_nodes as nodes, nodes_agree as agree, schedulers as scheduler,
            backend_sets as real_servers, nodes as listed_by
        from int_ipvs_services__compared_across_nodes
        order by bundle_id, service""",
    "ipvs_counters": """
        select node, service, coalesce(backend_ip || ':' || backend_port, '(service)') as target,
            conns, in_pkts, out_pkts, in_bytes, out_bytes, cps, in_pps, out_pps, in_bps, out_bps
        from (
            select node, service, null as backend_ip, null as backend_port, conns, in_pkts,
                out_pkts, in_bytes, out_bytes, cps, in_pps, out_pps, in_bps, out_bps,
                source_file, source_line, bundle_id, format
            from ipvs_services
            union all
            select node, service, backend_ip, backend_port, conns, in_pkts, out_pkts, in_bytes,
                out_bytes, cps, in_pps, out_pps, in_bps, out_bps, source_file, source_line,
                bundle_id, format
            from ipvs_backends
        )
        where format in ('stats', 'rate')
        order by bundle_id, node, source_file, source_line""",
    "nat_groups": """
        select node, proto, dialed_ip || ':' || coalesce(dialed_port::varchar, '-') as dialed,
            backend_ip || ':' || coalesce(backend_port::varchar, '-') as backend, nat_kind,
            count(*) as connections,
            string_agg(distinct snat_ip, ', ' order by snat_ip) as snat_sources,
            string_agg(distinct client_ip, ', ' order by client_ip) as clients
        from nat_translations
        group by bundle_id, node, proto, dialed_ip, dialed_port, backend_ip, backend_port, nat_kind
        order by bundle_id, node, proto, dialed_ip, dialed_port, backend_ip, backend_port,
            nat_kind""",
    "nat_rows": """
        select node, proto,
            client_ip || ':' || coalesce(client_port::varchar, '-') as client,
            dialed_ip || ':' || coalesce(dialed_port::varchar, '-') as dialed,
            backend_ip || ':' || coalesce(backend_port::varchar, '-') as backend,
            snat_ip || ':' || coalesce(snat_port::varchar, '-') as backend_saw,
            nat_kind, coalesce(state, '') as state, evidence,
            source_file || ':' || source_line as first_seen
        from nat_translations
        order by bundle_id, node, proto, dialed_ip, dialed_port, client_ip, client_port,
            backend_ip, backend_port, snat_ip, snat_port""",
    "distribution": """
        select proto, dialed_ip || ':' || dialed_port as dialed,
            backend_ip || ':' || backend_port as backend, connections, share,
            is_ipvs_backend as listed_by_ipvs
        from backend_distribution where scope = 'all'
        order by bundle_id, proto, dialed_ip, dialed_port, backend_ip, backend_port""",
    "connections_by_backend": """
        with labelled as (
            select *,
                coalesce(service, proto || ' ' || dialed_ip || ':' || dialed_port) as label,
                case
                    when match_status = 'matched' then backend_ip || ':' || backend_port
                    else '(' || match_status || ')'
                end as backend
            from connections
        )
        select label as service, backend, coalesce(backend_name, '') as name,
            coalesce(snat_class, '') as snat_class, count(*) as connections,
            count(*) filter (where evidence = 'both') as conntrack_and_captures,
            count(*) filter (where evidence = 'pcap') as captures_only,
            count(*) filter (where evidence = 'conntrack') as conntrack_only,
            coalesce(string_agg(distinct dnat_node, ', ' order by dnat_node), '') as dnat_nodes,
            coalesce(string_agg(distinct snat_ip, ', ' order by snat_ip), '') as snat_sources
        from labelled
        group by label, backend, backend_name, snat_class
        order by service, starts_with(backend, '('), backend, snat_class, name""",
    "connection_examples": """
        with ranked as (
            select *,
                coalesce(service, proto || ' ' || dialed_ip || ':' || dialed_port) as service_label,
                row_number() over (
                    partition by coalesce(service, proto || ' ' || dialed_ip || ':' || dialed_port)
                    order by evidence = 'both' desc, n_legs desc, snat_class, bundle_id, ts,
                        conn_id
                ) as example_rank
            from connections
            where match_status = 'matched' and n_legs > 0
        )
        select service_label,
            client_ip || ':' || client_port as client, dialed_ip || ':' || dialed_port as dialed,
            backend_ip || ':' || backend_port as backend, snat_ip || ':' || snat_port as snat,
            coalesce(dnat_node, '-') as dnat_node, match_rule,
            leg.role, leg.node, array_to_string(leg.ifaces, ', ') as ifaces,
            leg.orig || ' -> ' || leg.resp as tuple, leg.source_file, leg.uid, leg.community_id,
            -- why: relative times keep the report free of wall-clock times
            printf('+%.3f ms', (epoch_ns(leg.first_ts)
                - min(epoch_ns(leg.first_ts)) over (partition by conn_id)) / 1e6) as time
        from ranked, unnest(legs) as l(leg)
        where example_rank = 1
        order by service_label, leg.first_ts, leg.node, leg.role""",
    "states": """
        select node, proto, coalesce(state, '(none)') as state, count(*) as entries,
            count(*) filter (where flags like '%ASSURED%') as assured,
            count(*) filter (where flags like '%UNREPLIED%') as unreplied
        from conntrack_entries where snapshot_kind = 'table'
        group by bundle_id, node, proto, state
        order by bundle_id, node, proto, state""",
    "events": """
        select node, coalesce(event, '') as event, proto, count(*) as events
        from conntrack_entries where snapshot_kind = 'event'
        group by bundle_id, node, event, proto
        order by bundle_id, node, event, proto""",
    "errors": f"""
        select source_file || ':' || coalesce(line::varchar, '@' || byte_offset::varchar)
                as location,
            severity, reason, left(raw, 80) as raw
        from ingest_errors
        order by bundle_id, node, source_file, line nulls last, byte_offset nulls last
        limit {MAX_ERRORS_SHOWN}""",
    "error_total": "select count(*) as n from ingest_errors",
}


@dataclass(frozen=True)
class Section:
    result: QueryResult

    @property
    def rows(self) -> list[tuple[object, ...]]:
        return self.result.rows

    @property
    def table(self) -> str:
        return markdown_table(self.result.columns, self.result.rows)


WHY_QUERY = """
    with ranked as (
        select *,
            row_number() over (
                partition by bundle_id, proto, dialed_ip, dialed_port, snat_class
                order by node, client_ip, client_port, backend_ip, backend_port, observed_snat_ip,
                    observed_snat_port
            ) as example_rank,
            count(*) over (partition by bundle_id, proto, dialed_ip, dialed_port, snat_class)
                as connections,
            count(*) filter (where agrees) over (
                partition by bundle_id, proto, dialed_ip, dialed_port, snat_class) as agreeing,
            count(*) filter (where agrees is not null) over (
                partition by bundle_id, proto, dialed_ip, dialed_port, snat_class) as predicted
        from snat_decisions
    )
    select * from ranked where example_rank = 1
    order by bundle_id, proto, dialed_ip, dialed_port, snat_class"""

CHART_QUERY = """
    select * from backend_distribution where scope = 'all'
    order by bundle_id, proto, dialed_ip, dialed_port, backend_ip, backend_port"""


def why_groups(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per dialed service and SNAT class: one example connection, its trail and reason."""
    groups = fetch_dicts(con, WHY_QUERY)
    drawn: set[str] = set()
    for group in groups:
        group["diagram"] = None
        if group["snat_class"] not in drawn:
            drawn.add(group["snat_class"])
            group["diagram"] = connection_sequence(group)
    return groups


def distribution_groups(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = fetch_dicts(con, CHART_QUERY)
    services: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["bundle_id"], row["proto"], row["dialed_ip"], row["dialed_port"])
        services.setdefault(key, []).append(row)
    out = []
    for (_, proto, ip, port), backends in services.items():
        name = backends[0]["dialed_name"]
        title = f"{proto} {ip}:{port}" + (f" {name}" if name else "")
        out.append(
            {
                "title": title,
                "rows": backends,
                "chart": distribution_chart(title, backends),
                "first": backends[0],
            }
        )
    return out


def collect_sections(con: duckdb.DuckDBPyConnection) -> dict[str, Section]:
    return {name: Section(run_query(con, sql)) for name, sql in SECTION_QUERIES.items()}


def code_line(text: object) -> str:
    """Text for a line inside a fenced code block: no fence, no line break can break out."""
    return str(text).replace("`" * 3, "'" * 3).replace("\n", " ")


def render_report(con: duckdb.DuckDBPyConnection) -> str:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # Markdown, not HTML: cells are escaped by md_escape instead
    )
    env.filters["md"] = md_escape
    env.filters["codeblock"] = code_line
    template = env.get_template("report.md.j2")
    return template.render(
        s=collect_sections(con),
        why=why_groups(con),
        distributions=distribution_groups(con),
        checks=run_checks(con),
        coverage=coverage(con),
    )


def run_checks(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Run every checks/*.sql view; return the failing ones with their offending row counts."""
    failing: dict[str, int] = {}
    for view in read_view_files():
        if view.layer != "checks":
            continue
        row = con.execute(f"select count(*) from {view.name}").fetchone()
        if row and row[0]:
            failing[view.name.removeprefix(CHECK_PREFIX)] = int(row[0])
    return failing

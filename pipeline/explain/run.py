"""Recompute the derived tables after a load: SNAT decisions, promised shares, fit tests."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import duckdb
import polars as pl

from ..db import fetch_dicts
from ..schemas import (
    DERIVED_DISTRIBUTION_TESTS,
    DERIVED_EXPECTED_BACKENDS,
    DERIVED_SNAT_DECISIONS,
    DERIVED_TABLES,
    TableSchema,
)
from .classify import ClusterFacts, parse_ip
from .decide import Explanation, Translation, explain
from .inputs import NodeInputs, load_node_inputs
from .nft_inputs import cluster_cidrs
from .shares import ShareTally, expected_rows, fit_tests


def cluster_facts(
    con: duckdb.DuckDBPyConnection, nodes: dict[tuple[str, str], NodeInputs]
) -> ClusterFacts:
    facts = ClusterFacts()
    for row in fetch_dicts(
        con,
        "select distinct node_name, address_type, address, pod_cidr "
        "from stg_k8s__nodes order by all",
    ):
        if row["pod_cidr"]:
            try:
                cidr = ipaddress.ip_network(row["pod_cidr"], strict=False)
                facts.pod_cidrs.setdefault(cidr, f"podCIDR of node {row['node_name']}")
            except ValueError:
                pass
        ip = parse_ip(row["address"])
        if ip is not None and row["address_type"] == "InternalIP":
            facts.node_ips.setdefault(ip, row["node_name"])
    for key, inputs in sorted(nodes.items()):
        for rules in inputs.ruleset.rules.values():
            for rule in rules:
                for option in rule.options:
                    # why: kube-proxy masquerades traffic to services from outside the cluster
                    # CIDR with `! -s <clusterCIDR> ... -j KUBE-MARK-MASQ`
                    if (
                        option.option in ("-s", "--source")
                        and option.negated
                        and rule.target == "KUBE-MARK-MASQ"
                        and option.args
                    ):
                        try:
                            cidr = ipaddress.ip_network(option.args[0], strict=False)
                        except ValueError:
                            continue
                        facts.pod_cidrs.setdefault(
                            cidr, f"kube-proxy's cluster CIDR in {rule.ref} on {key[1]}"
                        )
        for cidr_text, ref in cluster_cidrs(inputs.nft) if inputs.nft is not None else []:
            try:
                cidr = ipaddress.ip_network(cidr_text, strict=False)
            except ValueError:
                continue
            facts.pod_cidrs.setdefault(cidr, f"kube-proxy's cluster CIDR in {ref} on {key[1]}")
        for address in inputs.netstate.addresses:
            facts.add_local(key, address.local, f"on {address.ifname} in `ip addr`")
        for proto, vip, vport in sorted(inputs.ipvs_vips, key=str):
            if 30000 <= vport <= 32767:
                why = (
                    f"IPVS lists NodePort {vip}:{vport} ({proto}) on it, and "
                    "kube-proxy binds NodePorts to the node's own addresses"
                )
                facts.add_local(key, vip, why)
                inputs.netstate.extra_local.setdefault(vip, why)
    return facts


TRANSLATION_BATCH = 20_000
"""Translations explained and stored per batch: memory is bounded by a batch, not the table."""


def _translation_batches(con: duckdb.DuckDBPyConnection) -> Iterator[list[dict[str, Any]]]:
    cursor = con.cursor()  # its own cursor: the inserts between batches do not reset it
    cursor.execute(
        "select bundle_id, node, proto, client_ip, client_port, dialed_ip, dialed_port, "
        "backend_ip, backend_port, snat_ip, snat_port, nat_kind, source_file, source_line "
        "from nat_translations order by all"
    )
    names = [d[0] for d in cursor.description or []]
    try:
        while batch := cursor.fetchmany(TRANSLATION_BATCH):
            yield [dict(zip(names, row, strict=True)) for row in batch]
    finally:
        cursor.close()


def _decision(row: dict[str, Any], explanation: Explanation) -> dict[str, Any]:
    record = {k: row[k] for k in row if k not in ("nat_kind",)}
    record.update(
        hook=explanation.hook,
        decision=explanation.decision,
        trail=explanation.trail,
        mark=explanation.mark,
        mark_set_by=explanation.mark_set_by,
        dnat_by=explanation.dnat_by,
        egress_iface=explanation.egress_iface,
        route=explanation.route,
        predicted_snat_ip=explanation.predicted_snat_ip,
        agrees=explanation.agrees,
        snat_class=explanation.snat_class,
        snat_class_basis=explanation.snat_class_basis,
        is_random_fully=explanation.is_random_fully,
        is_snat_port_in_nodeport_range=explanation.is_snat_port_in_nodeport_range,
        path_probability=explanation.path_probability,
        reason=explanation.reason,
        missing_inputs=explanation.missing_inputs,
        unknowns=explanation.unknowns,
    )
    return record


def recompute(con: duckdb.DuckDBPyConnection) -> None:
    """Explain every translation and store the derived tables, in one transaction.

    The decisions are explained and inserted batch by batch (TRANSLATION_BATCH), so a table of
    millions of conntrack entries costs a batch of memory.
    """
    nodes = load_node_inputs(con)
    facts = cluster_facts(con, nodes)
    tally = ShareTally()
    con.execute("begin transaction")
    try:
        for schema in DERIVED_TABLES:
            con.execute(f"delete from {schema.name}")
        for batch in _translation_batches(con):
            decisions: list[dict[str, Any]] = []
            for row in batch:
                t = Translation(**{k: row[k] for k in Translation.__dataclass_fields__})
                explanation = explain(t, nodes.get((t.bundle_id, t.node)), facts)
                decisions.append(_decision(row, explanation))
                if row["nat_kind"] in ("dnat", "dnat+snat"):
                    tally.add(row, explanation.dnat_shares, explanation.share_basis)
            _insert(con, DERIVED_SNAT_DECISIONS, decisions)
        expected = expected_rows(con, tally)
        tests = fit_tests(con, expected)
        _insert(con, DERIVED_EXPECTED_BACKENDS, expected)
        _insert(con, DERIVED_DISTRIBUTION_TESTS, tests)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def _insert(
    con: duckdb.DuckDBPyConnection, schema: TableSchema, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    frame = pl.DataFrame(
        [{k: r.get(k) for k in schema.polars_schema()} for r in rows],
        schema=schema.polars_schema(),
        orient="row",
    )
    con.register("_natlens_derived", frame.to_arrow())
    try:
        con.execute(f"insert into {schema.name} by name select * from _natlens_derived")
    finally:
        con.unregister("_natlens_derived")

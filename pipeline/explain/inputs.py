"""Read each node's nat rules, ipsets, addresses and routes from the staging views."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb

from ..db import fetch_dicts
from .netstate import Address, IPAddress, NodeNetState, Route
from .nft_inputs import NftRuleset, load_nft_rulesets
from .ruleset import IpSet, MatchOption, Rule, Ruleset

NodeKey = tuple[str, str]  # (bundle_id, node)


@dataclass
class NodeInputs:
    key: NodeKey
    ruleset: Ruleset
    netstate: NodeNetState
    ipvs_vips: set[tuple[str, IPAddress, int]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    nft: NftRuleset | None = None  # set for kube-proxy nftables-mode nodes: walked instead


def _ip(text: Any) -> IPAddress | None:
    if text is None:
        return None
    try:
        return ipaddress.ip_address(str(text).split("%", 1)[0])
    except ValueError:
        return None


def load_node_inputs(con: duckdb.DuckDBPyConnection) -> dict[NodeKey, NodeInputs]:
    nodes: dict[NodeKey, NodeInputs] = {}

    def node(bundle_id: str, name: str) -> NodeInputs:
        key = (bundle_id, name)
        if key not in nodes:
            nodes[key] = NodeInputs(key, Ruleset(name), NodeNetState(name))
        return nodes[key]

    _load_rules(con, node)
    _load_ipsets(con, node)
    _load_addresses(con, node)
    _load_routes(con, node)
    for key, nft in load_nft_rulesets(con).items():
        node(*key).nft = nft
    for row in fetch_dicts(
        con,
        "select bundle_id, node, proto, vip, vport from stg_ipvs__services where vport is not null",
    ):
        vip = _ip(row["vip"])
        if vip is not None:
            node(row["bundle_id"], row["node"]).ipvs_vips.add((row["proto"], vip, row["vport"]))
    return nodes


def _load_rules(con: duckdb.DuckDBPyConnection, node: Any) -> None:
    # why: `iptables -S` fragments do not say their table; a file whose policies name INPUT or
    # FORWARD is a filter listing, anything else without a table is taken as nat (noted)
    rows = fetch_dicts(
        con,
        "select r.bundle_id, r.node, r.source_file, r.source_line, r.format, r.table_name, "
        "r.chain, r.rule, r.matches, r.jump_kind, r.target, r.target_args "
        "from stg_iptables__rules as r "
        "where r.table_name = 'nat' or (r.table_name is null and not exists ("
        "  select 1 from stg_iptables__chains as c where c.bundle_id = r.bundle_id "
        "  and c.node = r.node and c.source_file = r.source_file "
        "  and c.chain in ('INPUT', 'FORWARD') and c.policy is not null)) "
        "order by r.bundle_id, r.node, r.source_file, r.source_line",
    )
    complete_files = {
        (r["bundle_id"], r["node"], r["source_file"])
        for r in rows
        if r["format"] == "save" and r["table_name"] == "nat"
    }
    by_node: dict[NodeKey, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_node[(row["bundle_id"], row["node"])].append(row)
    for key, node_rows in by_node.items():
        inputs = node(*key)
        full = sorted(f for (b, n, f) in complete_files if (b, n) == key)
        if full:
            # why: a complete iptables-save is the truth; fragments of the same node are older
            # or partial views of it. With several saves, the last file name wins.
            chosen = full[-1]
            node_rows = [r for r in node_rows if r["source_file"] == chosen]
            inputs.ruleset.is_complete = True
            if len(full) > 1:
                inputs.notes.append(f"several iptables-save files; used {chosen}")
        seen: set[tuple[str, str]] = set()
        for row in _fragment_order(node_rows):
            identity = (row["chain"], row["rule"])
            if identity in seen:
                continue  # the same rule printed by several grep fragments
            seen.add(identity)
            chain_rules = inputs.ruleset.rules.setdefault(row["chain"], [])
            chain_rules.append(_rule(row, len(chain_rules) + 1))
        if not full:
            inputs.notes.append(
                "only fragments of the nat table (iptables -S | grep ...): rule numbers are "
                "positions among the rules seen, the table is assumed to be nat"
            )
    for row in fetch_dicts(
        con,
        "select bundle_id, node, chain, policy from stg_iptables__chains "
        "where coalesce(table_name, 'nat') = 'nat' and policy is not null",
    ):
        node(row["bundle_id"], row["node"]).ruleset.policies[row["chain"]] = row["policy"]


def _fragment_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per chain, the file that shows most of the chain's rules gives their order first.

    why: `iptables -S | grep X` keeps the chain order of the rules it shows, but a grep for
    another chain shows only the rules that mention it, out of context.
    """
    by_chain: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_chain[row["chain"]][row["source_file"]].append(row)
    ordered: list[dict[str, Any]] = []
    for files in by_chain.values():
        ranked = sorted(files.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        for _, file_rows in ranked:
            ordered.extend(file_rows)
    return ordered


def _rule(row: dict[str, Any], num: int) -> Rule:
    options = tuple(
        MatchOption(
            module=str(m.get("module") or ""),
            option=str(m.get("option") or ""),
            negated=bool(m.get("negated")),
            args=tuple(str(a) for a in (m.get("args") or [])),
        )
        for m in (row["matches"] or [])
    )
    return Rule(
        table="nat",
        chain=row["chain"],
        num=num,
        text=row["rule"] or "",
        options=options,
        jump_kind=row["jump_kind"],
        target=row["target"],
        target_args=tuple(row["target_args"] or ()),
        source=f"{row['source_file']}:{row['source_line']}",
    )


def _load_ipsets(con: duckdb.DuckDBPyConnection, node: Any) -> None:
    types = {
        (r["bundle_id"], r["node"], r["set_name"]): r["set_type"]
        for r in fetch_dicts(con, "select bundle_id, node, set_name, set_type from stg_ipset__sets")
    }
    for (bundle_id, name, set_name), set_type in types.items():
        node(bundle_id, name).ruleset.ipsets[set_name] = IpSet(set_name, set_type or "")
    for row in fetch_dicts(
        con,
        "select bundle_id, node, set_name, member, extra from stg_ipset__members "
        "order by bundle_id, node, source_file, source_line",
    ):
        ipsets = node(row["bundle_id"], row["node"]).ruleset.ipsets
        ipset = ipsets.setdefault(row["set_name"], IpSet(row["set_name"], ""))
        bucket = ipset.excluded if "nomatch" in str(row["extra"] or "").split() else ipset.members
        if row["member"] not in bucket:
            bucket.append(row["member"])


def _load_addresses(con: duckdb.DuckDBPyConnection, node: Any) -> None:
    for row in fetch_dicts(
        con,
        "select distinct bundle_id, node, ifindex, ifname, local, prefixlen, scope, "
        "is_secondary, source_file, source_line from stg_host__addrs "
        "where local is not null order by bundle_id, node, source_file, source_line",
    ):
        local = _ip(row["local"])
        if local is None:
            continue
        netstate = node(row["bundle_id"], row["node"]).netstate
        address = Address(
            ifname=row["ifname"] or "",
            local=local,
            prefixlen=int(
                row["prefixlen"] if row["prefixlen"] is not None else local.max_prefixlen
            ),
            scope=row["scope"] or "global",
            is_secondary=bool(row["is_secondary"]),
        )
        if address not in netstate.addresses:
            netstate.addresses.append(address)


def _load_routes(con: duckdb.DuckDBPyConnection, node: Any) -> None:
    for row in fetch_dicts(
        con,
        "select bundle_id, node, table_name, route_type, dst, gateway, dev, prefsrc, metric, "
        "source_file, source_line from stg_host__routes "
        "order by bundle_id, node, source_file, source_line",
    ):
        dst_text = str(row["dst"] or "")
        if dst_text == "default":
            dst_text = "::/0" if ":" in str(row["gateway"] or "") else "0.0.0.0/0"
        try:
            dst = ipaddress.ip_network(dst_text, strict=False)
        except ValueError:
            continue
        text = (
            f"{dst_text}"
            + (f" via {row['gateway']}" if row["gateway"] else "")
            + (f" dev {row['dev']}" if row["dev"] else "")
            + (f" src {row['prefsrc']}" if row["prefsrc"] else "")
        )
        route = Route(
            dst=dst,
            dev=row["dev"],
            gateway=_ip(row["gateway"]),
            prefsrc=_ip(row["prefsrc"]),
            metric=int(row["metric"] or 0),
            table=row["table_name"] or "main",
            route_type=row["route_type"] or "unicast",
            text=text,
        )
        netstate = node(row["bundle_id"], row["node"]).netstate
        if route not in netstate.routes:
            netstate.routes.append(route)

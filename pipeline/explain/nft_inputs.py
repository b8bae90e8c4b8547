"""Read each node's nftables ruleset (chains, rules, sets and map elements) for the nft walker.

A node counts as nftables mode when its ruleset has a `kube-proxy` table: then its nat path is
walked through every nftables base chain (kube-proxy's and iptables-nft's tables alike), and its
iptables-save (which lists only the iptables-nft tables) is not used for the walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from ..db import fetch_dicts
from .nft_matches import ParseError, Term, element_matches, parse_rule
from .ruleset import Rule

ChainKey = tuple[str, str, str]  # family, table, chain
KUBE_PROXY_TABLE = "kube-proxy"


@dataclass(frozen=True)
class BaseChain:
    key: ChainKey
    chain_type: str
    hook: str
    priority: int
    policy: str
    order: int  # position in the listing: ties of priority keep it


@dataclass(frozen=True)
class NftRule:
    rule: Rule
    terms: tuple[Term, ...] | None  # None: the text could not be read (see error)
    error: str | None = None


@dataclass
class NftRuleset:
    node: str
    source_file: str
    chains: dict[ChainKey, list[NftRule]] = field(default_factory=dict)
    base: list[BaseChain] = field(default_factory=list)
    sets: dict[ChainKey, list[tuple[str, str | None]]] = field(default_factory=dict)

    _index: dict[ChainKey, tuple[dict[str, str | None], list[tuple[str, str | None]]]] = field(
        default_factory=dict, repr=False
    )

    def lookup(self, set_key: ChainKey, values: list[str]) -> tuple[bool, str | None] | None:
        """(found, data) for a packet's key in a set or map; None when the set is not known.

        Exact elements are found by a dict, only prefixes/ranges/wildcards are scanned: a
        cluster's `service-ips` map of thousands of Services costs one probe per connection.
        """
        if set_key not in self.sets:
            return None
        if set_key not in self._index:
            exact: dict[str, str | None] = {}
            scanned: list[tuple[str, str | None]] = []
            for element, data in self.sets[set_key]:
                parts = [p.strip() for p in element.split(" . ")]
                if any("/" in p or "-" in p or p.endswith("*") for p in parts):
                    scanned.append((element, data))
                else:
                    exact.setdefault(" . ".join(p.strip('"') for p in parts), data)
            self._index[set_key] = (exact, scanned)
        exact, scanned = self._index[set_key]
        probe = " . ".join(values)
        if probe in exact:
            return True, exact[probe]
        for element, data in scanned:
            if element_matches(element, values):
                return True, data
        return False, None

    def base_chains(self, chain_type: str, hook: str, families: tuple[str, ...]) -> list[BaseChain]:
        found = [
            b
            for b in self.base
            if b.chain_type == chain_type and b.hook == hook and b.key[0] in families
        ]
        return sorted(found, key=lambda b: (b.priority, b.order))


def load_nft_rulesets(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], NftRuleset]:
    """One ruleset per (bundle, node) with a kube-proxy table; text dumps preferred to JSON."""
    files = fetch_dicts(
        con,
        "select distinct bundle_id, node, source_file, format from stg_nft__rules "
        f"where table_name = '{KUBE_PROXY_TABLE}' order by all",
    )
    chosen: dict[tuple[str, str], tuple[str, str]] = {}
    for row in files:
        key = (row["bundle_id"], row["node"])
        rank = (0 if row["format"] == "text" else 1, row["source_file"])
        if key not in chosen or rank < (0 if chosen[key][1] == "text" else 1, chosen[key][0]):
            chosen[key] = (row["source_file"], row["format"])
    out: dict[tuple[str, str], NftRuleset] = {}
    for (bundle_id, node), (source_file, _) in chosen.items():
        out[(bundle_id, node)] = load_ruleset(con, bundle_id, node, source_file)
    return out


def load_ruleset(
    con: duckdb.DuckDBPyConnection, bundle_id: str, node: str, source_file: str
) -> NftRuleset:
    params = [bundle_id, node, source_file]
    where = "where bundle_id = ? and node = ? and source_file = ?"
    ruleset = NftRuleset(node, source_file)
    for order, row in enumerate(
        fetch_dicts(
            con,
            "select family, table_name, chain, chain_type, hook, priority, policy "
            f"from stg_nft__chains {where} order by source_line",
            params,
        )
    ):
        key = (row["family"], row["table_name"], row["chain"])
        ruleset.chains.setdefault(key, [])
        if row["hook"] and row["chain_type"]:
            ruleset.base.append(
                BaseChain(
                    key,
                    row["chain_type"],
                    row["hook"],
                    int(row["priority"] or 0),
                    (row["policy"] or "accept").lower(),
                    order,
                )
            )
    for row in fetch_dicts(
        con,
        "select family, table_name, chain, position, handle, rule, source_line "
        f"from stg_nft__rules {where} order by source_line, position",
        params,
    ):
        ruleset.chains.setdefault((row["family"], row["table_name"], row["chain"]), []).append(
            make_rule(row, source_file)
        )
    for row in fetch_dicts(
        con, f"select family, table_name, name from stg_nft__sets {where} order by all", params
    ):
        ruleset.sets.setdefault((row["family"], row["table_name"], row["name"]), [])
    for row in fetch_dicts(
        con,
        "select family, table_name, set_name, key, value "
        f"from stg_nft__elements {where} order by source_line, position",
        params,
    ):
        ruleset.sets.setdefault((row["family"], row["table_name"], row["set_name"]), []).append(
            (str(row["key"] or ""), row["value"])
        )
    return ruleset


def make_rule(row: dict[str, Any], source_file: str) -> NftRule:
    """One rule row (family, table_name, chain, position, handle, rule, source_line), read."""
    handle = row["handle"]
    number = int(handle) if handle is not None else int(row["position"] or 0)
    where = f"handle {handle}" if handle is not None else f"#{number}"
    text = str(row["rule"] or "")
    rule = Rule(
        table=f"{row['family']} {row['table_name']}",
        chain=row["chain"],
        num=number,
        text=text,
        options=(),
        jump_kind=None,
        target=None,
        target_args=(),
        source=f"{source_file}:{row['source_line']}",
        label=f"{row['family']} {row['table_name']}/{row['chain']}/{where}",
        display=text,
    )
    try:
        return NftRule(rule, tuple(parse_rule(text)))
    except (ParseError, ValueError, IndexError) as exc:
        return NftRule(rule, None, str(exc) or type(exc).__name__)


def cluster_cidrs(ruleset: NftRuleset) -> list[tuple[str, str]]:
    """(CIDR, rule ref) of kube-proxy's `ip saddr != <clusterCIDR> ... mark-for-masquerade` rules.

    why: kube-proxy marks service traffic from outside the cluster CIDR for masquerade, so the
    negated source prefix of its marking rules is the cluster (pod) CIDR.
    """
    out: list[tuple[str, str]] = []
    for (_, table, _), rules in sorted(ruleset.chains.items()):
        if table != KUBE_PROXY_TABLE:
            continue
        for nft_rule in rules:
            terms = nft_rule.terms or ()
            marks = any(
                (t.kind == "verdict" and t.arg.endswith(" mark-for-masquerade"))
                or (t.kind == "mark_set" and t.arg == "|")
                for t in terms
            )
            for t in terms:
                if marks and t.kind == "match" and t.keys == ("ip saddr",) and t.negated:
                    out += [(v, nft_rule.rule.ref) for v in t.values if "/" in v]
    return out

"""The nftables rule reader and walker on kube-proxy's rule shapes (pkg/proxy/nftables/proxier.go).

The rule texts are written as `nft list ruleset` prints them; the lab tests
(tests/explain/test_lab_nft.py, test_lab_fresh.py) check the same code on rulesets the kernel
printed back.
"""

from __future__ import annotations

import ipaddress

import pytest

from pipeline.explain.matches import Packet
from pipeline.explain.netstate import Address, NodeNetState
from pipeline.explain.nft_inputs import BaseChain, NftRuleset, cluster_cidrs, make_rule
from pipeline.explain.nft_matches import ParseError, parse_rule
from pipeline.explain.nft_walker import NftWalker

TABLE = ("ip", "kube-proxy")


def ruleset(
    chains: dict[str, list[str]], sets: dict[str, list[tuple[str, str | None]]]
) -> NftRuleset:
    rs = NftRuleset("node-a", "nft-ruleset.txt")
    line = 0
    for chain, rules in chains.items():
        rs.chains[(*TABLE, chain)] = []
        for position, text in enumerate(rules, 1):
            line += 1
            row = {
                "family": TABLE[0],
                "table_name": TABLE[1],
                "chain": chain,
                "position": position,
                "handle": None,
                "rule": text,
                "source_line": line,
            }
            rs.chains[(*TABLE, chain)].append(make_rule(row, "nft-ruleset.txt"))
    rs.base = [
        BaseChain((*TABLE, "nat-prerouting"), "nat", "prerouting", -100, "accept", 0),
        BaseChain((*TABLE, "nat-postrouting"), "nat", "postrouting", 100, "accept", 1),
    ]
    rs.sets = {(*TABLE, name): elements for name, elements in sets.items()}
    return rs


def netstate() -> NodeNetState:
    state = NodeNetState("node-a")
    state.addresses.append(Address("eth0", ipaddress.ip_address("172.18.0.5"), 16, "global", False))
    return state


def packet(dst: str, dport: int, src: str = "172.18.0.6", proto: str = "tcp") -> Packet:
    return Packet(proto, ipaddress.ip_address(src), 40000, ipaddress.ip_address(dst), dport)


SERVICE_IPS = [("10.96.0.10 . tcp . 80", "goto service-X-ns/web/tcp/http")]
NODEPORTS = [("tcp . 30080", "goto external-X-ns/web/tcp/http")]


def vmap_chains(slots: str) -> dict[str, list[str]]:
    return {
        "nat-prerouting": ["jump services"],
        "nat-postrouting": ["jump masquerading"],
        "services": [
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap "
            "@service-nodeports",
        ],
        "mark-for-masquerade": ["meta mark set meta mark | 0x00004000"],
        "masquerading": [
            "meta mark & 0x00004000 == 0x00000000 return",
            "meta mark set meta mark ^ 0x00004000",
            "masquerade fully-random",
        ],
        "external-X-ns/web/tcp/http": [
            "jump mark-for-masquerade",
            "goto service-X-ns/web/tcp/http",
        ],
        "service-X-ns/web/tcp/http": [
            "ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
            f"numgen random mod 3 vmap {{ {slots} }}",
        ],
        "endpoint-A-ns/web/tcp/http__10.244.1.2/8080": [
            "ip saddr 10.244.1.2 jump mark-for-masquerade",
            "meta l4proto tcp dnat to 10.244.1.2:8080",
        ],
        "endpoint-B-ns/web/tcp/http__10.244.2.2/8080": [
            "ip saddr 10.244.2.2 jump mark-for-masquerade",
            "meta l4proto tcp dnat to 10.244.2.2:8080",
        ],
    }


def test_numgen_vmap_counts_an_endpoint_once_per_slot() -> None:
    slots = (
        "0 : goto endpoint-A-ns/web/tcp/http__10.244.1.2/8080, "
        "1 : goto endpoint-B-ns/web/tcp/http__10.244.2.2/8080, "
        "2 : goto endpoint-A-ns/web/tcp/http__10.244.1.2/8080"
    )
    rs = ruleset(vmap_chains(slots), {"service-ips": SERVICE_IPS, "service-nodeports": NODEPORTS})
    paths = NftWalker(rs, netstate()).walk("PREROUTING", packet("10.96.0.10", 80))
    shares = {p.dnat_to: p.probability for p in paths if p.dnat_to}
    assert shares == pytest.approx({"10.244.1.2:8080": 2 / 3, "10.244.2.2:8080": 1 / 3})
    for path in paths:
        # from outside the pod CIDR: marked by the service chain's rule via mark-for-masquerade
        assert path.mark == 0x4000
        assert path.mark_rule is not None and path.mark_rule.chain == "mark-for-masquerade"
        assert path.mark_caller is not None and path.mark_caller.chain.startswith("service-X")
        assert any("numgen: " in step.render() for step in path.steps)
        assert path.steps[0].ref == "ip kube-proxy/nat-prerouting/#1"


def test_nodeport_goes_through_fib_local_and_the_external_chain() -> None:
    slots = (
        "0 : goto endpoint-A-ns/web/tcp/http__10.244.1.2/8080, "
        "1 : goto endpoint-B-ns/web/tcp/http__10.244.2.2/8080, "
        "2 : goto endpoint-B-ns/web/tcp/http__10.244.2.2/8080"
    )
    rs = ruleset(vmap_chains(slots), {"service-ips": SERVICE_IPS, "service-nodeports": NODEPORTS})
    walker = NftWalker(rs, netstate())
    paths = walker.walk("PREROUTING", packet("172.18.0.5", 30080))
    assert {p.dnat_to: p.probability for p in paths} == pytest.approx(
        {"10.244.1.2:8080": 1 / 3, "10.244.2.2:8080": 2 / 3}
    )
    assert all(p.mark_caller and p.mark_caller.chain.startswith("external-") for p in paths)
    # a NodePort on an address that is not the node's: fib daddr type local does not match
    assert all(p.dnat_to is None for p in walker.walk("PREROUTING", packet("172.18.0.9", 30080)))
    # postrouting: the mark leads to masquerade fully-random; no mark: returns, no NAT
    marked = Packet(
        "tcp",
        ipaddress.ip_address("172.18.0.6"),
        1,
        ipaddress.ip_address("10.244.1.2"),
        8080,
        0x4000,
    )
    post = walker.walk("POSTROUTING", marked)
    assert [p.verdict for p in post] == ["MASQUERADE"]
    assert post[0].nat_rule is not None and post[0].nat_rule.has_target_flag("--random-fully")
    assert post[0].mark == 0  # the mark is cleared before masquerading
    unmarked = Packet(
        "tcp", ipaddress.ip_address("172.18.0.6"), 1, ipaddress.ip_address("10.244.1.2"), 8080
    )
    assert [p.verdict for p in walker.walk("POSTROUTING", unmarked)] == ["policy ACCEPT"]


def test_dnat_numgen_map_and_hairpin_set() -> None:
    chains = {
        "nat-prerouting": ["jump services"],
        "nat-postrouting": ["jump masquerading"],
        "services": [
            "ip daddr @cluster-ips ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000"
            ' comment "masquerade clusterIP traffic from outside cluster"',
            "ip daddr . meta l4proto . th dport vmap @service-ips",
        ],
        "masquerading": [
            "meta mark & 0x00004000 != 0x00000000 meta mark set meta mark ^ 0x00004000"
            " masquerade fully-random",
            "ct status dnat ip saddr . ip daddr . meta l4proto . th dport @hairpin-connections"
            " masquerade fully-random",
        ],
        "service-X-ns/web/tcp/http": [
            "meta l4proto tcp dnat ip to numgen random mod 4 map { 0 : 10.244.1.2 . 8080, "
            "1 : 10.244.2.2 . 8080, 2 : 10.244.2.2 . 8080, 3 : 10.244.2.2 . 8080 }"
        ],
    }
    sets: dict[str, list[tuple[str, str | None]]] = {
        "service-ips": SERVICE_IPS,
        "cluster-ips": [("10.96.0.10", None)],
        "hairpin-connections": [("10.244.1.2 . 10.244.1.2 . tcp . 8080", None)],
    }
    walker = NftWalker(ruleset(chains, sets), netstate())
    paths = walker.walk("PREROUTING", packet("10.96.0.10", 80, src="10.244.1.2"))
    assert {p.dnat_to: p.probability for p in paths} == pytest.approx(
        {"10.244.1.2:8080": 1 / 4, "10.244.2.2:8080": 3 / 4}
    )
    assert all(p.mark == 0 for p in paths)  # a pod source is not marked
    hairpin = Packet(
        "tcp",
        ipaddress.ip_address("10.244.1.2"),
        1,
        ipaddress.ip_address("10.244.1.2"),
        8080,
        is_dnated=True,
    )
    post = walker.walk("POSTROUTING", hairpin)
    assert [p.verdict for p in post] == ["MASQUERADE"]
    assert "@hairpin-connections" in post[0].steps[-1].text
    other = replace_dst(hairpin, "10.244.2.2")
    assert [p.verdict for p in walker.walk("POSTROUTING", other)] == ["policy ACCEPT"]


def replace_dst(p: Packet, dst: str) -> Packet:
    from dataclasses import replace

    return replace(p, dst=ipaddress.ip_address(dst))


def test_unknown_expression_is_named_not_guessed() -> None:
    with pytest.raises(ParseError):
        parse_rule("ip daddr 10.0.0.1 osf name Linux dnat to 10.1.1.1")
    chains = {
        "nat-prerouting": ["jump services"],
        "nat-postrouting": [],
        "services": [
            "ip daddr 10.96.0.10 quota over 10 mbytes dnat to 10.244.9.9:80",
            "ip daddr 10.96.0.10 tcp dport 80 dnat to 10.244.1.2:8080",
        ],
    }
    paths = NftWalker(ruleset(chains, {}), netstate()).walk("PREROUTING", packet("10.96.0.10", 80))
    assert [p.dnat_to for p in paths] == ["10.244.1.2:8080"]
    assert paths[0].unknowns and paths[0].unknowns[0].startswith(
        "cannot follow rule ip kube-proxy/services/#1"
    )


def test_rule_terms_of_kube_proxy_shapes() -> None:
    terms = parse_rule("ip daddr . meta l4proto . th dport vmap @service-ips")
    assert [(t.kind, t.keys, t.values) for t in terms] == [
        ("vmap", ("ip daddr", "meta l4proto", "th dport"), ("@service-ips",))
    ]
    terms = parse_rule("mark and 0x4000 == 0 return")
    assert [(t.kind, t.number, t.values) for t in terms] == [
        ("mark_test", 0x4000, ("0",)),
        ("verdict", 0, ()),
    ]
    terms = parse_rule("counter packets 3 bytes 180 masquerade fully-random")
    assert [(t.kind, t.arg) for t in terms] == [("masquerade", "fully-random")]


def test_iptables_nft_comment_is_a_no_op_other_xt_matches_are_not_followed() -> None:
    terms = parse_rule('ip daddr 10.10.0.0/16 xt match "comment" counter packets 3 bytes 9 return')
    assert [t.kind for t in terms] == ["match", "verdict"]
    with pytest.raises(ParseError):
        parse_rule('xt match "comment" xt match "addrtype" counter jump KIND-MASQ-AGENT')


def test_local_traffic_policy_and_affinity_shapes() -> None:
    # external-: `fib saddr type local jump mark-for-masquerade` (node-local clients only);
    # session affinity lookups are live state: named, not evaluated
    chains = {
        "nat-prerouting": ["jump external-X"],
        "nat-postrouting": [],
        "mark-for-masquerade": ["meta mark set meta mark | 0x00004000"],
        "external-X": [
            "fib saddr type local jump mark-for-masquerade",
            "ip saddr @affinity-X goto endpoint-A",
            "goto endpoint-A",
        ],
        "endpoint-A": ["meta l4proto tcp dnat to 10.244.1.2:8080"],
    }
    sets: dict[str, list[tuple[str, str | None]]] = {"affinity-X": [("172.18.0.5", None)]}
    walker = NftWalker(ruleset(chains, sets), netstate())
    local = walker.walk("PREROUTING", packet("10.96.0.10", 80, src="172.18.0.5"))
    remote = walker.walk("PREROUTING", packet("10.96.0.10", 80, src="172.18.0.6"))
    assert [(p.dnat_to, p.mark) for p in local] == [("10.244.1.2:8080", 0x4000)]
    assert [(p.dnat_to, p.mark) for p in remote] == [("10.244.1.2:8080", 0)]
    assert any("external-X/#2" in u for u in remote[0].unknowns)


def test_cluster_cidr_from_the_marking_rules() -> None:
    rs = ruleset(vmap_chains("0 : goto endpoint-A-ns/web/tcp/http__10.244.1.2/8080"), {})
    assert cluster_cidrs(rs) == [("10.244.0.0/16", "ip kube-proxy/service-X-ns/web/tcp/http/#1")]

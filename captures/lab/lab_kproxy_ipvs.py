"""kube-proxy IPVS mode (v1.31 shape) and the IPVS emulation this kernel needs.

What kube-proxy itself writes (recorded in the bundle as it is): the ipsets (KUBE-CLUSTER-IP,
KUBE-NODE-PORT-TCP, KUBE-LOOP-BACK, ...) and the ipset-based iptables rules of the seed
(KUBE-SERVICES ... ``-j ACCEPT``, KUBE-NODE-PORT, KUBE-POSTROUTING with KUBE-LOOP-BACK).

What IPVS would do (this kernel has no IPVS): round-robin DNAT per virtual service. It is done
with ``iptables-legacy`` nat rules using ``-m statistic --mode nth``. Why legacy: kube-proxy's
``KUBE-SERVICES ... -j ACCEPT`` ends the nat table for cluster IPs, so no later rule of the same
table could DNAT, and a DNAT placed earlier would hide the original destination from
kube-proxy's rules. The legacy nat table is a second nat table on the same hook: the kernel runs
nat chains of equal priority newest-first, so the legacy table is loaded *before* kube-proxy's
iptables-nft rules and therefore runs *after* them, exactly where IPVS acts (after the marks).
``iptables-save`` (nft) does not show these rules, just as it does not show IPVS.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab_kproxy_common import (
    FILTER_BUILTIN,
    MASQ_MARK,
    NAT_BUILTIN,
    chain_decls,
    kind_masq_agent,
    kubelet_firewall_rule,
    mangle_table,
    mark_masq,
    portal_jumps,
    postrouting_masq,
    short_chain,
)
from lab_model import Cluster, Endpoint, Node

EMULATION_CHAIN = "NATLENS-IPVS"


@dataclass(frozen=True)
class VirtualService:
    proto: str  # tcp | udp
    vip: str
    port: int
    dests: tuple[Endpoint, ...]

    @property
    def label(self) -> str:
        return f"{self.proto.upper()} {self.vip}:{self.port}"


def virtual_services(cluster: Cluster, node: Node) -> list[VirtualService]:
    """The IPVS services kube-proxy would create on ``node``: cluster IPs, NodePorts on the
    node IP and on every other local address (the pod gateway, as in the seed)."""
    found = []
    for svc in cluster.services:
        for port in svc.ports:
            dests = tuple(cluster.endpoints(svc, port))
            found.append(VirtualService(port.proto, svc.cluster_ip, port.port, dests))
            if port.node_port is not None:
                for addr in (node.ip, node.gateway):
                    found.append(VirtualService(port.proto, addr, port.node_port, dests))
    return found


def ipset_restore_text(cluster: Cluster, node: Node) -> str:
    """``ipset restore`` input: every set kube-proxy's IPVS proxier creates, in its order."""
    hashed = "family inet hashsize 1024 maxelem 65536"
    sets = [
        ("KUBE-LOOP-BACK", "hash:ip,port,ip"),
        ("KUBE-CLUSTER-IP", "hash:ip,port"),
        ("KUBE-EXTERNAL-IP", "hash:ip,port"),
        ("KUBE-EXTERNAL-IP-LOCAL", "hash:ip,port"),
        ("KUBE-LOAD-BALANCER", "hash:ip,port"),
        ("KUBE-LOAD-BALANCER-FW", "hash:ip,port"),
        ("KUBE-LOAD-BALANCER-LOCAL", "hash:ip,port"),
        ("KUBE-LOAD-BALANCER-SOURCE-IP", "hash:ip,port,ip"),
        ("KUBE-LOAD-BALANCER-SOURCE-CIDR", "hash:ip,port,net"),
        ("KUBE-NODE-PORT-TCP", "bitmap:port"),
        ("KUBE-NODE-PORT-LOCAL-TCP", "bitmap:port"),
        ("KUBE-NODE-PORT-UDP", "bitmap:port"),
        ("KUBE-NODE-PORT-LOCAL-UDP", "bitmap:port"),
        ("KUBE-NODE-PORT-SCTP-HASH", "hash:ip,port"),
        ("KUBE-NODE-PORT-LOCAL-SCTP-HASH", "hash:ip,port"),
        ("KUBE-HEALTH-CHECK-NODE-PORT", "bitmap:port"),
        ("KUBE-IPVS-IPS", "hash:ip"),
    ]
    lines = [
        f"create {name} {kind} " + ("range 0-65535" if kind == "bitmap:port" else hashed)
        for name, kind in sets
    ]
    for name, entry in ipset_members(cluster, node):
        lines.append(f"add {name} {entry}")
    return "\n".join(lines) + "\n"


def ipset_members(cluster: Cluster, node: Node) -> list[tuple[str, str]]:
    members = []
    for svc in cluster.services:
        members.append(("KUBE-IPVS-IPS", svc.cluster_ip))
        for port in svc.ports:
            members.append(("KUBE-CLUSTER-IP", f"{svc.cluster_ip},{port.proto}:{port.port}"))
            if port.node_port is not None:
                members.append((f"KUBE-NODE-PORT-{port.proto.upper()}", str(port.node_port)))
            for ep in cluster.endpoints(svc, port):
                if ep.node == node.name:  # hairpin masquerade for endpoints on this node
                    entry = f"{ep.ip},{port.proto}:{ep.port},{ep.ip}"
                    members.append(("KUBE-LOOP-BACK", entry))
    return list(dict.fromkeys(members))


def restore_text(cluster: Cluster, node: Node) -> str:
    """mangle + filter + nat tables (iptables-nft) as kube-proxy's IPVS proxier leaves them."""
    used = {name for name, _ in ipset_members(cluster, node)}
    lines = mangle_table(with_proxy_canary=False) + _filter() + _nat(used, cluster.plan.pod_cidr)
    return "\n".join(lines) + "\n"


def _filter() -> list[str]:
    chains = ["KUBE-FIREWALL", "KUBE-FORWARD", "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER"]
    chains += ["KUBE-KUBELET-CANARY", "KUBE-NODE-PORT", "KUBE-PROXY-FIREWALL"]
    chains += ["KUBE-SOURCE-RANGES-FIREWALL"]
    ipvs_filter = [
        f"-A KUBE-IPVS-FILTER -m set --match-set {name} {match} -j RETURN"
        for name, match in (
            ("KUBE-LOAD-BALANCER", "dst,dst"),
            ("KUBE-CLUSTER-IP", "dst,dst"),
            ("KUBE-EXTERNAL-IP", "dst,dst"),
            ("KUBE-EXTERNAL-IP-LOCAL", "dst,dst"),
            ("KUBE-HEALTH-CHECK-NODE-PORT", "dst"),
        )
    ]
    return [
        "*filter",
        *chain_decls(FILTER_BUILTIN, chains),
        '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
        '-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
        '-A INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT',
        "-A INPUT -j KUBE-FIREWALL",
        '-A FORWARD -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        '-A OUTPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER',
        "-A OUTPUT -j KUBE-FIREWALL",
        kubelet_firewall_rule(),
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" '
        f"-m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        *ipvs_filter,
        "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst "
        "-j REJECT",
        '-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" '
        "-m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT",
        "-A KUBE-SOURCE-RANGES-FIREWALL -j DROP",
        "COMMIT",
    ]


def _nat(used_sets: set[str], pod_cidr: str) -> list[str]:
    chains = ["KIND-MASQ-AGENT", "KUBE-KUBELET-CANARY", "KUBE-LOAD-BALANCER", "KUBE-MARK-MASQ"]
    chains += ["KUBE-NODE-PORT", "KUBE-POSTROUTING", "KUBE-SERVICES"]
    loop_back = []
    if "KUBE-LOOP-BACK" in used_sets:  # kube-proxy only writes rules for non-empty sets
        loop_back.append(
            '-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source '
            'ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src '
            "-j MASQUERADE"
        )
    node_port = [
        f"-A KUBE-NODE-PORT -p {proto} -m comment --comment "
        f'"Kubernetes nodeport {proto.upper()} port for masquerade purpose" '
        f"-m set --match-set KUBE-NODE-PORT-{proto.upper()} dst -j KUBE-MARK-MASQ"
        for proto in ("tcp", "udp")
        if f"KUBE-NODE-PORT-{proto.upper()}" in used_sets
    ]
    masq_jump, masq_chain = kind_masq_agent(pod_cidr)
    return [
        "*nat",
        *chain_decls(NAT_BUILTIN, chains),
        *portal_jumps(),
        *masq_jump,
        *masq_chain,
        *loop_back,
        *node_port,
        "-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN",
        '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for '
        'masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst '
        f"! -s {pod_cidr} -j KUBE-MARK-MASQ",
        "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
        "-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ",
        "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
        *postrouting_masq(random_fully=True),
        mark_masq(),
        "COMMIT",
    ]


def emulation_restore_text(cluster: Cluster, node: Node) -> str:
    """iptables-legacy nat rules doing the round robin IPVS would do (``statistic --mode nth``).

    The nat table sees only the first packet of a connection, so each connection advances the
    counter once: destinations are chosen in ipvsadm's listed order, like IPVS ``rr``.
    """
    comment = "natlens lab: IPVS emulation, this kernel has no IPVS (see the bundle README)"
    chains = [EMULATION_CHAIN]
    jumps = []
    vs_rules = []
    for vs in virtual_services(cluster, node):
        chain = short_chain("NATLENS-VS-", vs.label)
        chains.append(chain)
        jumps.append(
            f"-A {EMULATION_CHAIN} -d {vs.vip}/32 -p {vs.proto} -m {vs.proto} --dport {vs.port} "
            f'-m comment --comment "{vs.label} rr" -j {chain}'
        )
        for i, dest in enumerate(vs.dests):
            left = len(vs.dests) - i
            nth = f" -m statistic --mode nth --every {left} --packet 0" if left > 1 else ""
            vs_rules.append(f"-A {chain} -p {vs.proto}{nth} -j DNAT --to-destination {dest.addr}")
    lines = [
        "*nat",
        *chain_decls(NAT_BUILTIN, chains),
        f'-A PREROUTING -m comment --comment "{comment}" -j {EMULATION_CHAIN}',
        f'-A OUTPUT -m comment --comment "{comment}" -j {EMULATION_CHAIN}',
        *jumps,
        *vs_rules,
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"

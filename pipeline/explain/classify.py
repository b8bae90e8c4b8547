"""Name the kind of source address a backend saw: none, node IP, pod gateway, or other.

This needs no rules at all, so it works on bundles without routes or a full iptables-save
(like the seed write-up): it compares the observed SNAT source with the client, the node's
addresses (from `ip addr`, IPVS NodePort listings or kubectl), and the cluster's pod CIDRs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .netstate import IPAddress, IPNetwork

NODEPORT_RANGE = (30000, 32767)  # kube-apiserver's default --service-node-port-range


@dataclass
class ClusterFacts:
    """Addressing facts gathered from every input, with where each came from."""

    pod_cidrs: dict[IPNetwork, str] = field(default_factory=dict)
    node_ips: dict[IPAddress, str] = field(default_factory=dict)  # ip -> node name
    node_local: dict[tuple[str, str], dict[IPAddress, str]] = field(default_factory=dict)

    def add_local(self, bundle_node: tuple[str, str], ip: IPAddress, why: str) -> None:
        self.node_local.setdefault(bundle_node, {}).setdefault(ip, why)


@dataclass(frozen=True)
class SnatClass:
    name: str  # none | node IP | pod gateway | other
    basis: str


def classify(
    snat_ip: IPAddress | None,
    client_ip: IPAddress | None,
    bundle_node: tuple[str, str],
    facts: ClusterFacts,
) -> SnatClass:
    if snat_ip is None:
        return SnatClass("other", "no SNAT source recorded")
    if snat_ip == client_ip:
        return SnatClass("none", "the backend saw the client's own address: no SNAT")
    local = facts.node_local.get(bundle_node, {})
    for cidr, source in sorted(
        facts.pod_cidrs.items(), key=lambda kv: (-kv[0].prefixlen, str(kv[0]))
    ):
        if snat_ip.version == cidr.version and snat_ip in cidr:
            where = f"; {local[snat_ip]}" if snat_ip in local else ""
            return SnatClass(
                "pod gateway",
                f"{snat_ip} is inside the pod CIDR {cidr} ({source}){where}",
            )
    if snat_ip in local:
        return SnatClass(
            "node IP", f"{snat_ip} is an address of {bundle_node[1]} ({local[snat_ip]})"
        )
    if snat_ip in facts.node_ips:
        return SnatClass("node IP", f"{snat_ip} is the address of node {facts.node_ips[snat_ip]}")
    return SnatClass("other", f"{snat_ip} is neither the client, a node address nor a pod gateway")


def in_nodeport_range(port: int | None) -> bool:
    return port is not None and NODEPORT_RANGE[0] <= port <= NODEPORT_RANGE[1]


def parse_ip(text: object) -> IPAddress | None:
    if text is None:
        return None
    try:
        return ipaddress.ip_address(str(text))
    except ValueError:
        return None

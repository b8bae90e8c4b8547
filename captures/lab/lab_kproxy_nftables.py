"""kube-proxy nftables mode: the ``nft -f`` input for one node's ``table ip kube-proxy``.

Names and shapes follow pkg/proxy/nftables/proxier.go (v1.33-v1.35, GA) and, for
``--nft-shape dnat-map``, the v1.36-era output published from a real node:

- base chains ``filter-prerouting/-input/-forward/-output`` (priority dstnat - 10),
  ``filter-output-post-dnat`` (dstnat + 10), ``nat-prerouting``/``nat-output`` (dstnat) and
  ``nat-postrouting`` (srcnat); nft 1.0.6 takes the name dstnat on the prerouting hook only, so
  the other hooks get the same numbers (-110, -90, -100);
- ``services``: ``ip daddr . meta l4proto . th dport vmap @service-ips`` and the NodePort
  lookup ``fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap
  @service-nodeports``;
- vmap shape: ``service-HASH-ns/name/proto/port`` marks non-pod sources for masquerade and picks
  ``numgen random mod N vmap { i : goto endpoint-HASH-...__ip/port }``; each endpoint chain
  marks hairpin traffic (``ip saddr EP jump mark-for-masquerade``) and DNATs; ``external-HASH``
  (NodePort) marks and goes to the service chain; ``mark-for-masquerade`` sets 0x4000 and
  ``masquerading`` tests, clears and ``masquerade fully-random``s;
- dnat-map shape: the service chain is ``meta l4proto P dnat ip to numgen random mod N map
  { i : ip . port }``, ``services`` marks ClusterIP traffic from outside the pod CIDR, and
  ``masquerading`` masquerades marked packets and, via ``@hairpin-connections``, a pod that
  reached itself.

Chain names carry kube-proxy's hash: base32(sha256(name))[:8] + "-" + name.
"""

from __future__ import annotations

import base64
import hashlib

from lab_kproxy_common import (
    MASQ_MARK,
    NAT_BUILTIN,
    chain_decls,
    kind_masq_agent,
    kubelet_firewall_rule,
    mangle_table,
)
from lab_model import Cluster, Endpoint, Node, Service, ServicePort

SHAPES = ("vmap", "dnat-map")
TABLE = "kube-proxy"


def hash_and_truncate(name: str) -> str:
    """proxier.go hashAndTruncate (names here are far below the 240-character limit)."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    return digest[:8] + "-" + name


def _base(svc: Service, port: ServicePort) -> str:
    return f"{svc.namespace}/{svc.name}/{port.proto}/{port.name}"


def service_chain(svc: Service, port: ServicePort) -> str:
    return "service-" + hash_and_truncate(_base(svc, port))


def external_chain(svc: Service, port: ServicePort) -> str:
    return "external-" + hash_and_truncate(_base(svc, port))


def endpoint_chain(svc: Service, port: ServicePort, ep: Endpoint) -> str:
    return "endpoint-" + hash_and_truncate(f"{_base(svc, port)}__{ep.ip}/{ep.port}")


def iptables_restore_text(cluster: Cluster, node: Node) -> str:
    """What stays in iptables on such a node: kubelet's canaries and kindnet's masq agent."""
    masq_jump, masq_chain = kind_masq_agent(cluster.plan.pod_cidr)
    lines = mangle_table(with_proxy_canary=False)
    lines += [
        "*filter",
        *chain_decls(["INPUT", "FORWARD", "OUTPUT"], ["KUBE-FIREWALL", "KUBE-KUBELET-CANARY"]),
        "-A INPUT -j KUBE-FIREWALL",
        "-A OUTPUT -j KUBE-FIREWALL",
        kubelet_firewall_rule(),
        "COMMIT",
        "*nat",
        *chain_decls(NAT_BUILTIN, ["KIND-MASQ-AGENT", "KUBE-KUBELET-CANARY"]),
        *masq_jump,
        *masq_chain,
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


def nft_text(cluster: Cluster, node: Node, shape: str = "vmap") -> str:
    """The ``nft -f`` input creating kube-proxy's table on ``node``."""
    if shape not in SHAPES:
        raise ValueError(f"unknown nft shape {shape!r}")
    pod_cidr = cluster.plan.pod_cidr
    out = [f"table ip {TABLE} {{", '\tcomment "rules for kube-proxy"']
    services = sorted(cluster.services, key=lambda s: (s.namespace, s.name))
    ports = [(svc, port) for svc in services for port in svc.ports]
    cluster_ips = sorted({svc.cluster_ip for svc in services})
    out += _set("cluster-ips", "ipv4_addr", "Active ClusterIPs", cluster_ips)
    if shape == "dnat-map":
        hairpin = [
            f"{ep.ip} . {ep.ip} . {port.proto} . {ep.port}"
            for svc, port in ports
            for ep in cluster.endpoints(svc, port)
            if ep.pod is not None
        ]
        out += _set(
            "hairpin-connections",
            "ipv4_addr . ipv4_addr . inet_proto . inet_service",
            "service hairpin connections",
            hairpin,
        )
    svc_ips = [
        f"{svc.cluster_ip} . {port.proto} . {port.port} : goto {service_chain(svc, port)}"
        for svc, port in ports
    ]
    nodeports = [
        f"{port.proto} . {port.node_port} : goto {external_chain(svc, port)}"
        for svc, port in ports
        if port.node_port is not None
    ]
    vmap = "ipv4_addr . inet_proto . inet_service : verdict"
    out += _set("service-ips", vmap, "ClusterIP, ExternalIP and LoadBalancer IP traffic", svc_ips)
    out += _set(
        "service-nodeports", "inet_proto . inet_service : verdict", "NodePort traffic", nodeports
    )
    out += _set(
        "no-endpoint-services",
        vmap,
        "vmap to drop or reject packets to services with no endpoints",
        [],
    )
    out += _set(
        "no-endpoint-nodeports",
        "inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to service nodeports with no endpoints",
        [],
    )
    out += _set(
        "firewall-ips", vmap, "destinations that are subject to LoadBalancerSourceRanges", []
    )
    out += _base_chains()
    out += _chain(
        "service-endpoints-check", ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"]
    )
    out += _chain(
        "nodeport-endpoints-check",
        ["ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"],
    )
    out += _chain("firewall-check", ["ip daddr . meta l4proto . th dport vmap @firewall-ips"])
    out += _chain(
        "cluster-ips-check",
        [
            'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
            f"ip daddr {{ {cluster.plan.service_cidr} }} drop"
            ' comment "Drop traffic to unallocated ClusterIPs"',
        ],
    )
    out += _chain(
        "reject-chain",
        ["reject"],
        comment="helper for @no-endpoint-services / @no-endpoint-nodeports",
    )
    services_rules = []
    if shape == "dnat-map":
        services_rules.append(
            f"ip daddr @cluster-ips ip saddr != {pod_cidr} meta mark set meta mark | {MASQ_MARK}"
            ' comment "masquerade clusterIP traffic from outside cluster"'
        )
    services_rules += [
        "ip daddr . meta l4proto . th dport vmap @service-ips",
        "fib daddr type local ip daddr != 127.0.0.0/8"
        " meta l4proto . th dport vmap @service-nodeports",
    ]
    out += _chain("services", services_rules)
    if shape == "vmap":
        out += _chain("mark-for-masquerade", [f"mark set mark or {MASQ_MARK}"])
        out += _chain(
            "masquerading",
            [
                f"mark and {MASQ_MARK} == 0 return",
                f"mark set mark xor {MASQ_MARK}",
                "masquerade fully-random",
            ],
        )
    else:
        out += _chain(
            "masquerading",
            [
                f"meta mark & {MASQ_MARK} != 0 meta mark set meta mark ^ {MASQ_MARK}"
                " masquerade fully-random",
                "ct status dnat ip saddr . ip daddr . meta l4proto . th dport @hairpin-connections"
                " masquerade fully-random",
            ],
        )
    for svc, port in ports:
        out += _service_chains(cluster, svc, port, shape)
    out.append("}")
    return "\n".join(out) + "\n"


def _service_chains(cluster: Cluster, svc: Service, port: ServicePort, shape: str) -> list[str]:
    out: list[str] = []
    endpoints = cluster.endpoints(svc, port)
    svc_c = service_chain(svc, port)
    if port.node_port is not None:
        mark = (
            "jump mark-for-masquerade"
            if shape == "vmap"
            else f"meta mark set meta mark | {MASQ_MARK}"
        )
        out += _chain(external_chain(svc, port), [mark, f"goto {svc_c}"])
    if shape == "vmap":
        slots = ", ".join(
            f"{i} : goto {endpoint_chain(svc, port, ep)}" for i, ep in enumerate(endpoints)
        )
        out += _chain(
            svc_c,
            [
                f"ip daddr {svc.cluster_ip} {port.proto} dport {port.port} "
                f"ip saddr != {cluster.plan.pod_cidr} jump mark-for-masquerade",
                f"numgen random mod {len(endpoints)} vmap {{ {slots} }}",
            ],
        )
        for ep in endpoints:
            out += _chain(
                endpoint_chain(svc, port, ep),
                [
                    f"ip saddr {ep.ip} jump mark-for-masquerade",
                    f"meta l4proto {port.proto} dnat to {ep.addr}",
                ],
            )
    else:
        slots = ", ".join(f"{i} : {ep.ip} . {ep.port}" for i, ep in enumerate(endpoints))
        numgen = f"numgen random mod {len(endpoints)}"
        rule = f"meta l4proto {port.proto} dnat ip to {numgen} map {{ {slots} }}"
        out += _chain(svc_c, [rule])
    return out


def _set(name: str, type_: str, comment: str, elements: list[str]) -> list[str]:
    kind = "map" if " : " in type_ else "set"
    lines = [f"\t{kind} {name} {{", f"\t\ttype {type_}", f'\t\tcomment "{comment}"']
    if elements:
        lines.append("\t\telements = { " + ", ".join(elements) + " }")
    return lines + ["\t}"]


_BASE_CHAINS = (
    (
        "filter-prerouting",
        "filter",
        "prerouting",
        "dstnat - 10",
        ["ct state new jump firewall-check"],
    ),
    (
        "filter-input",
        "filter",
        "input",
        "-110",
        ["ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"],
    ),
    (
        "filter-forward",
        "filter",
        "forward",
        "-110",
        ["ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"],
    ),
    (
        "filter-output",
        "filter",
        "output",
        "-110",
        ["ct state new jump service-endpoints-check", "ct state new jump firewall-check"],
    ),
    ("filter-output-post-dnat", "filter", "output", "-90", ["ct state new jump cluster-ips-check"]),
    ("nat-prerouting", "nat", "prerouting", "dstnat", ["jump services"]),
    ("nat-output", "nat", "output", "-100", ["jump services"]),
    ("nat-postrouting", "nat", "postrouting", "srcnat", ["jump masquerading"]),
)


def _base_chains() -> list[str]:
    out: list[str] = []
    for name, type_, hook, priority, rules in _BASE_CHAINS:
        out += [
            f"\tchain {name} {{",
            f"\t\ttype {type_} hook {hook} priority {priority}; policy accept;",
        ]
        out += [f"\t\t{r}" for r in rules] + ["\t}"]
    return out


def _chain(name: str, rules: list[str], comment: str | None = None) -> list[str]:
    lines = [f"\tchain {name} {{"]
    if comment:
        lines.append(f'\t\tcomment "{comment}"')
    return lines + [f"\t\t{r}" for r in rules] + ["\t}"]

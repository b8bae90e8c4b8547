"""kube-proxy iptables mode (v1.31 shape): the iptables-restore input for one node.

KUBE-SERVICES -> KUBE-SVC-* -> ``statistic --mode random --probability`` cascade -> KUBE-SEP-*
(DNAT), NodePorts via KUBE-NODEPORTS -> KUBE-EXT-*, KUBE-MARK-MASQ setting 0x4000 and
KUBE-POSTROUTING masquerading marked packets with ``--random-fully``.
"""

from __future__ import annotations

from lab_kproxy_common import (
    FILTER_BUILTIN,
    MASQ_MARK,
    NAT_BUILTIN,
    chain_decls,
    ext_chain,
    kind_masq_agent,
    kubelet_firewall_rule,
    mangle_table,
    mark_masq,
    portal_jumps,
    postrouting_masq,
    sep_chain,
    svc_chain,
)
from lab_model import Cluster, Node


def restore_text(cluster: Cluster, node: Node) -> str:
    """mangle + filter + nat tables as one iptables-restore input."""
    lines = mangle_table(with_proxy_canary=True) + _filter() + _nat(cluster)
    return "\n".join(lines) + "\n"


def _filter() -> list[str]:
    chains = [
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FIREWALL",
        "KUBE-FORWARD",
        "KUBE-KUBELET-CANARY",
        "KUBE-NODEPORTS",
        "KUBE-PROXY-CANARY",
        "KUBE-PROXY-FIREWALL",
        "KUBE-SERVICES",
    ]
    new = "-m conntrack --ctstate NEW"
    lb_fw = f'{new} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'
    portals = f'{new} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
    ext = (
        f'{new} -m comment --comment "kubernetes externally-visible service portals" '
        "-j KUBE-EXTERNAL-SERVICES"
    )
    return [
        "*filter",
        *chain_decls(FILTER_BUILTIN, chains),
        f"-A INPUT {lb_fw}",
        '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
        f"-A INPUT {ext}",
        "-A INPUT -j KUBE-FIREWALL",
        f"-A FORWARD {lb_fw}",
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        f"-A FORWARD {portals}",
        f"-A FORWARD {ext}",
        f"-A OUTPUT {lb_fw}",
        f"-A OUTPUT {portals}",
        "-A OUTPUT -j KUBE-FIREWALL",
        kubelet_firewall_rule(),
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" '
        f"-m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "COMMIT",
    ]


def _nat(cluster: Cluster) -> list[str]:
    chains = ["KIND-MASQ-AGENT", "KUBE-KUBELET-CANARY", "KUBE-MARK-MASQ", "KUBE-NODEPORTS"]
    chains += ["KUBE-POSTROUTING", "KUBE-PROXY-CANARY", "KUBE-SERVICES"]
    nodeports: list[str] = []
    services: list[str] = []
    exts: list[str] = []
    seps: list[str] = []
    svcs: list[str] = []
    for svc in sorted(cluster.services, key=lambda s: (s.namespace, s.name)):
        for port in svc.ports:
            name, proto = svc.port_name(port), port.proto
            svc_c = svc_chain(name, proto)
            chains.append(svc_c)
            match = f"-m {proto} -p {proto} -d {svc.cluster_ip} --dport {port.port}"
            services.append(f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" {match}')
            services[-1] += f" -j {svc_c}"
            svcs.append(
                f'-A {svc_c} -m comment --comment "{name} cluster IP" {match} '
                f"! -s {cluster.plan.pod_cidr} -j KUBE-MARK-MASQ"
            )
            if port.node_port is not None:
                ext_c = ext_chain(name, proto)
                chains.append(ext_c)
                nodeports.append(
                    f"-A KUBE-NODEPORTS -m comment --comment {name} -m {proto} -p {proto} "
                    f"--dport {port.node_port} -j {ext_c}"
                )
                exts += [
                    f'-A {ext_c} -m comment --comment "masquerade traffic for {name} external '
                    'destinations" -j KUBE-MARK-MASQ',
                    f"-A {ext_c} -j {svc_c}",
                ]
            endpoints = cluster.endpoints(svc, port)
            for i, ep in enumerate(endpoints):
                sep_c = sep_chain(name, proto, ep.addr)
                chains.append(sep_c)
                seps += [
                    f"-A {sep_c} -m comment --comment {name} -s {ep.ip} -j KUBE-MARK-MASQ",
                    f"-A {sep_c} -m comment --comment {name} -m {proto} -p {proto} "
                    f"-j DNAT --to-destination {ep.addr}",
                ]
                rule = f'-A {svc_c} -m comment --comment "{name} -> {ep.addr}"'
                left = len(endpoints) - i
                if left > 1:
                    rule += f" -m statistic --mode random --probability {1.0 / left:0.10f}"
                svcs.append(f"{rule} -j {sep_c}")
    services.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
        'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )
    masq_jump, masq_chain = kind_masq_agent(cluster.plan.pod_cidr)
    return [
        "*nat",
        *chain_decls(NAT_BUILTIN, chains),
        *portal_jumps(),
        *masq_jump,
        *masq_chain,
        *nodeports,
        *services,
        *exts,
        mark_masq(),
        *postrouting_masq(random_fully=True),
        *seps,
        *svcs,
        "COMMIT",
    ]

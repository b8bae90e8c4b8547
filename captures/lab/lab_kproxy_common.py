"""Pieces shared by both kube-proxy emulations: chain names, canaries, kindnet's masq agent.

Rules are written the way kube-proxy and kindnet write them (``-m comment --comment ... -m tcp
-p tcp -d X --dport N``) and loaded with iptables-restore; the bundle's ``iptables-save.txt`` is
whatever the real iptables then prints, so its normalised shape is authentic.
"""

from __future__ import annotations

import base64
import hashlib

MASQ_MARK = "0x4000"


def _hash16(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(port_name: str, proto: str) -> str:
    """kube-proxy servicePortChainName: KUBE-SVC- + base32(sha256(name + proto))[:16]."""
    return "KUBE-SVC-" + _hash16(port_name + proto)


def ext_chain(port_name: str, proto: str) -> str:
    return "KUBE-EXT-" + _hash16(port_name + proto)


def sep_chain(port_name: str, proto: str, endpoint: str) -> str:
    """kube-proxy servicePortEndpointChainName: KUBE-SEP- + hash of name + proto + ip:port."""
    return "KUBE-SEP-" + _hash16(port_name + proto + endpoint)


def short_chain(prefix: str, key: str) -> str:
    """A stable chain name (12 hex digits; iptables allows 28 characters)."""
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:12].upper()


def chain_decls(builtin: list[str], chains: list[str]) -> list[str]:
    return [f":{c} ACCEPT [0:0]" for c in builtin] + [f":{c} - [0:0]" for c in chains]


def mangle_table(with_proxy_canary: bool) -> list[str]:
    """kubelet (and the iptables proxier) keep canary chains in mangle, plus the hint chain."""
    chains = ["KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"]
    if with_proxy_canary:
        chains.append("KUBE-PROXY-CANARY")
    builtin = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
    return ["*mangle", *chain_decls(builtin, chains), "COMMIT"]


def kubelet_firewall_rule() -> str:
    return (
        '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" '
        "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
    )


def kind_masq_agent(pod_cidr: str) -> tuple[list[str], list[str]]:
    """kindnet's masquerade agent: (POSTROUTING jump, KIND-MASQ-AGENT chain rules)."""
    jump = [
        '-A POSTROUTING -m comment --comment "kind-masq-agent: ensure nat POSTROUTING directs all '
        'non-LOCAL destination traffic to our custom KIND-MASQ-AGENT chain" '
        "-m addrtype ! --dst-type LOCAL -j KIND-MASQ-AGENT"
    ]
    chain = [
        '-A KIND-MASQ-AGENT -m comment --comment "kind-masq-agent: local traffic is not subject to '
        f'MASQUERADE" -d {pod_cidr} -j RETURN',
        '-A KIND-MASQ-AGENT -m comment --comment "kind-masq-agent: outbound traffic is subject to '
        'MASQUERADE (must be last in chain)" -j MASQUERADE',
    ]
    return jump, chain


def postrouting_masq(random_fully: bool = True) -> list[str]:
    """KUBE-POSTROUTING as written by both proxiers (mark test, mark clear, masquerade)."""
    masq = '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT"'
    masq += " -j MASQUERADE" + (" --random-fully" if random_fully else "")
    return [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        masq,
    ]


def mark_masq() -> str:
    return f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}"


def portal_jumps() -> list[str]:
    return [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ]


NAT_BUILTIN = ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]
FILTER_BUILTIN = ["INPUT", "FORWARD", "OUTPUT"]

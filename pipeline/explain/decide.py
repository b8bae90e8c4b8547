"""Explain one translated connection: which rules marked, DNATed and SNATed it, and why.

The kernel's order for a connection's first packet: nat PREROUTING (arriving) or nat OUTPUT
(locally generated) may mark and DNAT it (or IPVS DNATs it after PREROUTING); routing picks the
egress interface for the new destination; nat POSTROUTING may SNAT/MASQUERADE it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .classify import ClusterFacts, classify, in_nodeport_range, parse_ip
from .inputs import NodeInputs
from .matches import MatchContext, Packet
from .netstate import IPAddress
from .nft_walker import NftWalker
from .walker import Walker, WalkPath

SHARE_BASIS_IPTABLES = "iptables statistic (rule walk)"
SHARE_BASIS_NFT = "nftables numgen map (rule walk)"


@dataclass(frozen=True)
class Translation:
    bundle_id: str
    node: str
    proto: str
    client_ip: str
    client_port: int | None
    dialed_ip: str
    dialed_port: int | None
    backend_ip: str
    backend_port: int | None
    snat_ip: str
    snat_port: int | None


@dataclass
class Explanation:
    hook: str = "PREROUTING"
    decision: str = "unknown"
    trail: list[str] = field(default_factory=list)
    mark: int | None = None
    mark_set_by: str | None = None
    dnat_by: str | None = None
    egress_iface: str | None = None
    route: str | None = None
    predicted_snat_ip: str | None = None
    agrees: bool | None = None
    snat_class: str = "other"
    snat_class_basis: str = ""
    is_random_fully: bool | None = None
    is_snat_port_in_nodeport_range: bool = False
    path_probability: float | None = None
    reason: str = ""
    missing_inputs: list[str] = field(default_factory=list)
    unknowns: list[str] = field(default_factory=list)
    dnat_shares: dict[str, float] = field(default_factory=dict)  # backend -> P(DNAT to it)
    share_basis: str = SHARE_BASIS_IPTABLES


def _dnat_hits(dnat_to: str | None, ip: str, port: int | None) -> bool:
    if dnat_to is None:
        return False
    host, _, dport = dnat_to.rpartition(":") if dnat_to.count(":") == 1 else (dnat_to, "", "")
    host = host.strip("[]")
    return host == ip and (not dport or port is None or dport == str(port))


def _missing(inputs: NodeInputs | None, node: str) -> list[str]:
    if inputs is None:
        return [f"`iptables-save` (nat), `ip -j route` and `ip -j addr` of {node}"]
    missing = []
    if inputs.nft is not None:
        pass  # why: an nftables-mode node's ruleset is its `nft list ruleset`, complete by nature
    elif not inputs.ruleset.has_rules:
        missing.append(f"`iptables-save` (nat table) of {node}")
    elif not inputs.ruleset.is_complete:
        missing.append(f"a full `iptables-save` of {node} (only `iptables -S | grep` fragments)")
    if not inputs.netstate.has_routes:
        missing.append(f"`ip -j route` of {node}")
    if not inputs.netstate.has_addresses:
        missing.append(f"`ip -j addr` of {node}")
    return missing


def explain(t: Translation, inputs: NodeInputs | None, facts: ClusterFacts) -> Explanation:
    out = Explanation()
    client, backend, snat = parse_ip(t.client_ip), parse_ip(t.backend_ip), parse_ip(t.snat_ip)
    dialed = parse_ip(t.dialed_ip)
    klass = classify(snat, client, (t.bundle_id, t.node), facts)
    out.snat_class, out.snat_class_basis = klass.name, klass.basis
    out.is_snat_port_in_nodeport_range = klass.name != "none" and in_nodeport_range(t.snat_port)
    out.missing_inputs = _missing(inputs, t.node)
    if inputs is None or client is None or backend is None or dialed is None:
        out.reason = _unexplained(t, out)
        return out
    netstate = inputs.netstate
    out.hook = "OUTPUT" if netstate.has_addresses and netstate.is_local(client) else "PREROUTING"
    in_route = netstate.route_lookup(client) if out.hook == "PREROUTING" else None
    walker: Walker | NftWalker
    if inputs.nft is not None:
        walker = NftWalker(inputs.nft, netstate)
        out.share_basis = SHARE_BASIS_NFT
    else:
        walker = Walker(MatchContext(netstate, inputs.ruleset))
    first = Packet(
        t.proto,
        client,
        t.client_port,
        dialed,
        t.dialed_port,
        in_iface=in_route.dev if in_route else None,
    )
    paths = walker.walk(out.hook, first)
    chosen = _choose(paths, t, inputs, out)
    out.path_probability = chosen.probability
    out.mark = chosen.mark
    out.trail = [s.render() for s in chosen.steps]
    out.unknowns = list(chosen.unknowns)
    if chosen.mark_rule is not None:
        caller = (
            f"{chosen.mark_caller.ref} `{chosen.mark_caller.shown}` -> "
            if chosen.mark_caller
            else ""
        )
        out.mark_set_by = f"{caller}{chosen.mark_rule.ref} `{chosen.mark_rule.shown}`"
    has_rules = inputs.nft is not None or inputs.ruleset.has_rules
    if not has_rules or not (netstate.has_routes and netstate.has_addresses):
        out.reason = _unexplained(t, out)
        return out
    if netstate.is_local(backend):
        out.decision = "none"
        out.predicted_snat_ip = t.client_ip
        out.reason = (
            f"{t.backend_ip} is an address of {t.node} itself, so the connection is "
            "delivered locally and never passes nat POSTROUTING"
        )
        out.agrees = out.predicted_snat_ip == t.snat_ip
        return out
    route = netstate.route_lookup(backend)
    if route is None or route.dev is None:
        out.unknowns.append(f"no route to {t.backend_ip} in `ip route` of {t.node}")
        out.reason = _unexplained(t, out)
        return out
    out.egress_iface, out.route = route.dev, route.text
    nexthop: IPAddress = route.gateway or backend
    second = Packet(
        t.proto,
        client,
        t.client_port,
        backend,
        t.backend_port,
        mark=chosen.mark,
        in_iface=first.in_iface,
        out_iface=route.dev,
        is_dnated=True,
    )
    post = walker.walk("POSTROUTING", second)
    final = max(post, key=lambda p: p.probability or 0.0)
    out.trail += [s.render() for s in final.steps]
    if inputs.nft is not None and final.verdict == "MASQUERADE" and out.mark_set_by is None:
        # why: kube-proxy's later nftables masquerading chain masquerades hairpin connections
        # by a set lookup (`@hairpin-connections`), with no mark: that rule is what chose it
        assert final.nat_rule is not None
        out.mark_set_by = f"{final.nat_rule.ref} `{final.nat_rule.shown}`"
    out.unknowns += [u for u in final.unknowns if u not in out.unknowns]
    _decide(t, out, final, route.dev, nexthop, inputs)
    return out


def _choose(
    paths: list[WalkPath], t: Translation, inputs: NodeInputs, out: Explanation
) -> WalkPath:
    for path in paths:
        if path.dnat_to is not None and path.probability is not None:
            backend = path.dnat_to
            out.dnat_shares[backend] = out.dnat_shares.get(backend, 0.0) + path.probability
    hits = [p for p in paths if _dnat_hits(p.dnat_to, t.backend_ip, t.backend_port)]
    if hits:
        best = max(hits, key=lambda p: p.probability or 0.0)
        assert best.nat_rule is not None
        out.dnat_by = f"{best.nat_rule.ref} `{best.nat_rule.shown}`"
        return best
    plain = [p for p in paths if p.dnat_to is None]
    dialed = parse_ip(t.dialed_ip)
    if (t.proto, dialed, t.dialed_port) in inputs.ipvs_vips:
        out.dnat_by = f"IPVS virtual service {t.dialed_ip}:{t.dialed_port} on {t.node}"
    elif t.backend_ip != t.dialed_ip or t.backend_port != t.dialed_port:
        out.unknowns.append(
            f"no rule path DNATs {t.dialed_ip}:{t.dialed_port} to {t.backend_ip}:{t.backend_port}"
            " and no IPVS listing of the dialed address was given"
        )
    candidates = plain or paths
    return max(candidates, key=lambda p: p.probability or 0.0)


def _decide(
    t: Translation,
    out: Explanation,
    final: WalkPath,
    dev: str,
    nexthop: IPAddress,
    inputs: NodeInputs,
) -> None:
    rule = final.nat_rule
    if final.verdict == "MASQUERADE" and rule is not None:
        choice = inputs.netstate.masquerade_source(dev, nexthop)
        out.decision = "masquerade"
        out.is_random_fully = rule.has_target_flag("--random-fully")
        out.predicted_snat_ip = str(choice.address) if choice.address else None
        if inputs.nft is not None and out.mark_set_by and not out.mark:
            marked = f"no rule set a mark, but {out.mark_set_by} matched the connection itself"
        elif out.mark_set_by:
            marked = f"{out.mark_set_by} marked it ({out.mark:#x})"
        else:
            marked = "no rule set a mark"
        out.reason = (
            f"{marked}; after DNAT to {t.backend_ip}:{t.backend_port} the route "
            f"`{out.route}` leaves through {dev}, and {rule.ref} MASQUERADE took "
            f"{dev}'s address: {choice.why}"
        )
    elif final.verdict == "SNAT" and rule is not None:
        to = (rule.target_option("--to-source") or "").split(":")[0]
        first, _, last = to.partition("-")
        out.decision = "snat"
        out.is_random_fully = rule.has_target_flag("--random-fully")
        out.predicted_snat_ip = first or None
        observed = parse_ip(t.snat_ip)
        low, high = parse_ip(first), parse_ip(last or first)
        if observed and low and high and low <= observed <= high:  # type: ignore[operator]
            out.predicted_snat_ip = t.snat_ip
        out.reason = f"{rule.ref} SNAT `--to-source {to}` rewrote the source"
    else:
        out.decision = "none"
        out.predicted_snat_ip = t.client_ip
        why = (
            "no rule marked it for masquerade"
            if not out.mark_set_by
            else (f"the mark {out.mark:#x} set by {out.mark_set_by} did not lead to a MASQUERADE")
        )
        out.reason = (
            f"{why} and no SNAT rule matched in nat POSTROUTING, so the backend saw "
            f"the client's own address {t.client_ip}"
        )
    out.agrees = out.predicted_snat_ip == t.snat_ip
    if out.unknowns:
        out.reason += f" (not evaluated: {'; '.join(out.unknowns)})"


def _unexplained(t: Translation, out: Explanation) -> str:
    needs = "; ".join(out.missing_inputs) or "; ".join(out.unknowns) or "more inputs"
    partial = ""
    if out.trail:
        partial = f" The rules given were walked as far as: {out.trail[-1]}"
        if out.unknowns:
            partial += f"; then {'; '.join(out.unknowns)}."
    return (
        f"The backend saw {t.snat_ip} ({out.snat_class}: {out.snat_class_basis}). "
        f"Which rule chose it cannot be shown without: {needs}.{partial}"
    )

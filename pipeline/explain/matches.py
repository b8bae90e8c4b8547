"""Evaluate one rule's matches against a connection's first packet, like the kernel would.

A match is True, False, a branch point (statistic, recent: true with some probability, or
"unknown probability"), or Unknown (a module natlens does not model): never assumed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .netstate import IPAddress, NodeNetState
from .ruleset import MatchOption, Rule, Ruleset, option_groups


@dataclass(frozen=True)
class Packet:
    """The first packet of a connection as a chain sees it."""

    proto: str
    src: IPAddress
    sport: int | None
    dst: IPAddress
    dport: int | None
    mark: int = 0
    in_iface: str | None = None
    out_iface: str | None = None
    is_dnated: bool = False  # conntrack's virtual DNAT state: destination already rewritten


@dataclass(frozen=True)
class MatchResult:
    matched: bool
    probability: float | None = None  # set for branch points: P(match)
    is_branch: bool = False
    unknown: str | None = None  # why it could not be evaluated
    note: str | None = None  # what decided it (for the trail)


TRUE = MatchResult(True)
FALSE = MatchResult(False)


@dataclass
class MatchContext:
    netstate: NodeNetState
    ruleset: Ruleset
    notes: list[str] = field(default_factory=list)


def _ip_match(spec: str, ip: IPAddress) -> bool:
    try:
        network = ipaddress.ip_network(spec, strict=False)
    except ValueError:
        return False
    return network.version == ip.version and ip in network


def _iface_match(spec: str, iface: str | None) -> bool | None:
    if iface is None:
        return None
    if spec.endswith("+"):
        return iface.startswith(spec[:-1])
    return iface == spec


def _port_match(spec: str, port: int | None) -> bool:
    if port is None:
        return False
    for item in spec.split(","):
        low, _, high = item.partition(":")
        lo = int(low) if low else 0
        hi = int(high) if high else (lo if not item.endswith(":") else 65535)
        if lo <= port <= hi:
            return True
    return False


def _parse_mark(spec: str) -> tuple[int, int]:
    value, _, mask = spec.partition("/")
    return int(value, 0), (int(mask, 0) if mask else 0xFFFFFFFF)


def evaluate_rule(rule: Rule, packet: Packet, ctx: MatchContext) -> MatchResult:
    """AND of every match group of the rule; branch probabilities multiply."""
    probability: float | None = 1.0
    is_branch = False
    notes: list[str] = []
    for group in option_groups(rule.options):
        result = _evaluate_group(group, packet, ctx)
        if result.unknown:
            return result
        if not result.matched:
            return FALSE
        if result.is_branch:
            is_branch = True
            probability = (
                None
                if result.probability is None or probability is None
                else probability * result.probability
            )
        if result.note:
            notes.append(result.note)
    return MatchResult(True, probability, is_branch, None, "; ".join(notes) or None)


def _negate(result: MatchResult, negated: bool) -> MatchResult:
    if not negated or result.unknown or result.is_branch:
        return result
    return MatchResult(not result.matched, note=result.note)


def _evaluate_group(group: list[MatchOption], packet: Packet, ctx: MatchContext) -> MatchResult:
    first = group[0]
    module = first.module
    if module == "":
        return _negate(_builtin(first, packet), first.negated)
    if module in ("comment",):
        return TRUE
    if module in ("tcp", "udp", "sctp", "multiport"):
        return _ports(group, packet)
    if module == "set":
        return _set(group, packet, ctx)
    if module == "addrtype":
        return _addrtype(group, packet, ctx)
    if module == "mark":
        spec = next((o for o in group if o.option == "--mark"), None)
        if spec is None or not spec.args:
            return MatchResult(False, unknown="mark match without --mark")
        value, mask = _parse_mark(spec.args[0])
        return _negate(MatchResult((packet.mark & mask) == value), spec.negated)
    if module == "statistic":
        return _statistic(group)
    if module == "recent":
        return MatchResult(
            True,
            probability=None,
            is_branch=True,
            note="-m recent: matches only if this client connected within the window "
            "(session affinity); unknown from a snapshot",
        )
    if module == "conntrack":
        return _conntrack(group, packet)
    if module == "state":
        states = next((o for o in group if o.option == "--state"), None)
        if states and states.args:
            return _negate(MatchResult("NEW" in states.args[0].split(",")), states.negated)
    text = " ".join(f"{o.option} {' '.join(o.args)}" for o in group)
    return MatchResult(False, unknown=f"-m {module} {text.strip()} is not modelled")


def _builtin(option: MatchOption, packet: Packet) -> MatchResult:
    arg = option.args[0] if option.args else ""
    name = option.option
    if name in ("-s", "--source", "--src"):
        return MatchResult(any(_ip_match(a, packet.src) for a in arg.split(",")))
    if name in ("-d", "--destination", "--dst"):
        return MatchResult(any(_ip_match(a, packet.dst) for a in arg.split(",")))
    if name in ("-p", "--protocol"):
        return MatchResult(arg.lower() in (packet.proto, "all", "0"))
    if name in ("-i", "--in-interface", "-o", "--out-interface"):
        iface = packet.in_iface if name in ("-i", "--in-interface") else packet.out_iface
        decided = _iface_match(arg, iface)
        if decided is None:
            return MatchResult(False, unknown=f"{name} {arg}: interface not known")
        return MatchResult(decided)
    if name in ("-f", "--fragment"):
        return FALSE
    return MatchResult(False, unknown=f"option {name} is not modelled")


def _ports(group: list[MatchOption], packet: Packet) -> MatchResult:
    for option in group:
        arg = option.args[0] if option.args else ""
        if option.option in ("--dport", "--destination-port", "--dports"):
            result = MatchResult(_port_match(arg, packet.dport))
        elif option.option in ("--sport", "--source-port", "--sports"):
            result = MatchResult(_port_match(arg, packet.sport))
        elif option.option in ("--ports",):
            result = MatchResult(_port_match(arg, packet.sport) or _port_match(arg, packet.dport))
        elif option.option in ("--syn", "--tcp-flags"):
            # the first packet of a TCP connection is a SYN
            result = MatchResult(packet.proto == "tcp")
        else:
            return MatchResult(False, unknown=f"{option.option} is not modelled")
        result = _negate(result, option.negated)
        if not result.matched:
            return FALSE
    return TRUE


def _set(group: list[MatchOption], packet: Packet, ctx: MatchContext) -> MatchResult:
    spec = next((o for o in group if o.option == "--match-set"), None)
    if spec is None or len(spec.args) < 2:
        return MatchResult(False, unknown="set match without NAME and directions")
    name, directions = spec.args[0], spec.args[1].split(",")
    ipset = ctx.ruleset.ipsets.get(name)
    if ipset is None:
        return MatchResult(False, unknown=f"ipset {name} is not in the input (need `ipset list`)")
    values: list[tuple[str, IPAddress | int, str | None]] = []
    for dim, direction in zip(ipset.dimensions, directions, strict=False):
        if dim in ("ip", "net"):
            values.append((dim, packet.src if direction == "src" else packet.dst, None))
        elif dim == "port":
            port = packet.sport if direction == "src" else packet.dport
            if port is None:
                return FALSE
            values.append((dim, port, packet.proto))
        else:
            return MatchResult(False, unknown=f"ipset {name} dimension {dim} is not modelled")
    found = ipset.contains(values)
    shown = ",".join(str(v[1]) if v[0] != "port" else f"{v[2]}:{v[1]}" for v in values)
    verb = "is" if found else "is not"
    return _negate(MatchResult(found, note=f"{shown} {verb} in ipset {name}"), spec.negated)


def _addrtype(group: list[MatchOption], packet: Packet, ctx: MatchContext) -> MatchResult:
    if not ctx.netstate.knows_local_addresses:
        return MatchResult(False, unknown="-m addrtype needs the node's addresses (`ip -j addr`)")
    limit_in = any(o.option == "--limit-iface-in" for o in group)
    limit_out = any(o.option == "--limit-iface-out" for o in group)
    notes = []
    for option in group:
        if option.option not in ("--src-type", "--dst-type"):
            continue
        ip = packet.src if option.option == "--src-type" else packet.dst
        types = option.args[0].split(",") if option.args else []
        iface = packet.in_iface if limit_in else packet.out_iface if limit_out else None
        is_local = _is_local(ctx.netstate, ip, iface)
        found = "LOCAL" in types and is_local
        if any(t != "LOCAL" for t in types) and not found:
            return MatchResult(False, unknown=f"addrtype {option.args[0]} is not modelled")
        result = _negate(MatchResult(found), option.negated)
        notes.append(f"{ip} is {'a' if is_local else 'not a'} local address of {ctx.netstate.node}")
        if not result.matched:
            return MatchResult(False, note="; ".join(notes))
    return MatchResult(True, note="; ".join(notes) or None)


def _is_local(netstate: NodeNetState, ip: IPAddress, iface: str | None) -> bool:
    if iface is None:
        return netstate.is_local(ip)
    return any(a.local == ip and a.ifname == iface for a in netstate.addresses)


def _statistic(group: list[MatchOption]) -> MatchResult:
    options = {o.option: (o.args[0] if o.args else "") for o in group}
    mode = options.get("--mode", "")
    if mode == "random":
        probability = float(options.get("--probability", "0"))
        return MatchResult(True, probability, True, note=f"random, probability {probability}")
    if mode == "nth":
        every = int(options.get("--every", "1"))
        # why: --every n lets 1 of every n packets that reach this rule through (round robin)
        return MatchResult(True, 1.0 / every, True, note=f"nth: 1 in {every}")
    return MatchResult(False, unknown=f"statistic mode {mode!r} is not modelled")


def _conntrack(group: list[MatchOption], packet: Packet) -> MatchResult:
    for option in group:
        arg = option.args[0] if option.args else ""
        if option.option == "--ctstate":
            states = set(arg.split(","))
            # why: the nat table sees only a connection's first packet (NEW); DNAT is the
            # virtual state of a connection whose destination was rewritten
            hit = "NEW" in states or ("DNAT" in states and packet.is_dnated)
            result = _negate(MatchResult(hit), option.negated)
        elif option.option == "--ctstatus":
            result = _negate(MatchResult(False), option.negated)
        else:
            return MatchResult(False, unknown=f"conntrack {option.option} is not modelled")
        if not result.matched:
            return FALSE
    return TRUE

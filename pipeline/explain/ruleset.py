"""A node's iptables nat table and ipsets, as the rule walker needs them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .netstate import IPAddress

BUILTIN_POLICY_CHAINS = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "FORWARD")


@dataclass(frozen=True)
class MatchOption:
    """One option of a rule: `module` ('' for built-ins like -s/-d/-p/-i/-o), negation, args."""

    module: str
    option: str
    negated: bool
    args: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    table: str
    chain: str
    num: int
    text: str
    options: tuple[MatchOption, ...]
    jump_kind: str | None  # "j" | "g" | None
    target: str | None
    target_args: tuple[str, ...]
    source: str  # file:line
    label: str | None = None  # nftables: "family table/chain/handle N" (or "#position")
    display: str | None = None  # nftables: the rule text as nft prints it

    @property
    def ref(self) -> str:
        return self.label or f"{self.table}/{self.chain}#{self.num}"

    @property
    def shown(self) -> str:
        """The rule as its tool prints it: `-A CHAIN ...` for iptables, the text for nft."""
        return self.display if self.display is not None else f"-A {self.chain} {self.text}"

    def target_option(self, name: str) -> str | None:
        args = list(self.target_args)
        if name in args:
            index = args.index(name)
            return args[index + 1] if index + 1 < len(args) else ""
        return None

    def has_target_flag(self, name: str) -> bool:
        return name in self.target_args


def option_groups(options: tuple[MatchOption, ...]) -> list[list[MatchOption]]:
    """Split a rule's options into match-module occurrences (`-m set ... -m set ...` = two).

    An explicit `-m MODULE` entry opens a group; built-in options (-s, -d, -p, -i, -o) are
    groups of their own; a repeated option starts a new occurrence of its module.
    """
    groups: list[list[MatchOption]] = []
    for option in options:
        if option.option in ("-m", "--match"):
            groups.append([])
            continue
        current = groups[-1] if groups else None
        if (
            option.module
            and current is not None
            and (not current or current[0].module == option.module)
            and not any(o.option == option.option for o in current)
        ):
            current.append(option)
        else:
            groups.append([option])
    return [g for g in groups if g]


@dataclass
class IpSet:
    name: str
    set_type: str
    members: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # `nomatch` members (hash:net exceptions)

    @property
    def dimensions(self) -> list[str]:
        """hash:ip,port -> ['ip', 'port']; bitmap:port -> ['port']; hash:net -> ['net']."""
        kind = self.set_type.split(":", 1)[1] if ":" in self.set_type else self.set_type
        return kind.split(",")

    def contains(self, values: list[tuple[str, IPAddress | int, str | None]]) -> bool:
        """values: per dimension (dim, value, proto-for-ports). Exact member semantics.

        why: a `nomatch` member is an exception inside a wider hash:net member; the kernel
        checks the most specific entry first, so a matching nomatch entry wins.
        """
        if any(_member_matches(m, self.dimensions, values) for m in self.excluded):
            return False
        for member in self.members:
            if _member_matches(member, self.dimensions, values):
                return True
        return False


def _member_matches(
    member: str, dims: list[str], values: list[tuple[str, IPAddress | int, str | None]]
) -> bool:
    parts = member.split(" ", 1)[0].split(",")
    if len(parts) < len(values):
        return False
    for part, dim, (_, value, proto) in zip(parts, dims, values, strict=False):
        if dim in ("ip", "net"):
            try:
                network = ipaddress.ip_network(part, strict=False)
            except ValueError:
                return False
            if not isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                return False
            if value.version != network.version or value not in network:
                return False
        elif dim == "port":
            member_proto, _, port_text = part.rpartition(":")
            if member_proto and proto and member_proto != proto:
                return False
            low, _, high = port_text.partition("-")
            try:
                lo_port = int(low)
                hi_port = int(high) if high else lo_port
            except ValueError:
                return False
            if not isinstance(value, int) or not lo_port <= value <= hi_port:
                return False
        elif dim == "mac" or dim == "iface":
            return False
    return True


@dataclass
class Ruleset:
    """The nat table of one node: chains in order, policies, and the ipsets it references."""

    node: str
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)
    ipsets: dict[str, IpSet] = field(default_factory=dict)
    is_complete: bool = False  # an iptables-save with *nat ... COMMIT (not a grep fragment)

    def chain(self, name: str) -> list[Rule] | None:
        return self.rules.get(name)

    @property
    def has_rules(self) -> bool:
        return bool(self.rules)

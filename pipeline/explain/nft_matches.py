"""Read one nftables rule's text (as `nft list ruleset` prints it) into terms, and test them.

Only the expressions kube-proxy's nftables mode (and iptables-nft's simple nat rules) use are
modelled: address/port/protocol tests against values, prefixes, `{ }` lists and named sets,
concatenated lookups (`ip daddr . meta l4proto . th dport vmap @service-ips`), `fib daddr type`,
`ct state`/`ct status`, mark tests and `meta mark set`, `numgen random mod N` verdict and dnat
maps, jump/goto/return, dnat/snat/masquerade. Anything else makes the rule unparsed: the walker
then says it cannot follow the rule instead of guessing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .matches import Packet
from .netstate import NodeNetState

# a concatenation key part: (selector, negated) -- selector like "ip daddr", "meta l4proto"
SELECTORS = (
    "ip saddr",
    "ip daddr",
    "ip6 saddr",
    "ip6 daddr",
    "meta l4proto",
    "ip protocol",
    "th dport",
    "th sport",
    "tcp dport",
    "tcp sport",
    "udp dport",
    "udp sport",
    "sctp dport",
    "sctp sport",
    "meta iifname",
    "meta oifname",
    "iifname",
    "oifname",
)
_COMMENT = re.compile(r'\s*comment\s+"(?:[^"\\]|\\.)*"')
_COUNTER = re.compile(r"\bcounter(\s+packets\s+\d+\s+bytes\s+\d+)?")


@dataclass(frozen=True)
class Term:
    """One test or statement of a rule, in order.

    kind: match (keys op values), fib (type local), ct_state, ct_status, mark_test, mark_set,
    verdict (jump/goto/return/accept/drop/reject), vmap (keys -> verdicts), numgen_vmap,
    dnat, dnat_numgen, snat, masquerade.
    """

    kind: str
    keys: tuple[str, ...] = ()
    negated: bool = False
    values: tuple[str, ...] = ()  # literal values, or ("@set",)
    arg: str = ""  # verdict chain, dnat target, mark op, fib type ...
    number: int = 0  # mark value/mask, numgen modulus
    mapping: tuple[tuple[int, str], ...] = ()  # numgen slot -> "goto chain" or "ip . port"


class ParseError(ValueError):
    pass


def tokens(text: str) -> list[str]:
    text = _COMMENT.sub("", text)
    text = _COUNTER.sub("", text)
    text = text.replace("{", " { ").replace("}", " } ").replace(",", " , ")
    return text.split()


def parse_rule(text: str) -> list[Term]:
    toks = tokens(text)
    terms: list[Term] = []
    i = 0

    def peek(k: int = 0) -> str:
        return toks[i + k] if i + k < len(toks) else ""

    def selector() -> str | None:
        pair = f"{peek()} {peek(1)}"
        if pair in SELECTORS:
            return pair
        if peek() in ("iifname", "oifname"):
            return peek()
        return None

    def values() -> tuple[str, ...]:
        nonlocal i
        if peek() == "{":
            j = toks.index("}", i)
            out = " ".join(toks[i + 1 : j]).split(" , ")
            i = j + 1
            return tuple(v.strip(" ,") for v in out if v.strip(" ,"))
        value = peek()
        i += 1
        return (value,)

    def slots() -> tuple[tuple[int, str], ...]:
        nonlocal i
        if peek() != "{":
            raise ParseError(f"expected {{ after map at {peek()!r}")
        j = toks.index("}", i)
        out = []
        for entry in " ".join(toks[i + 1 : j]).split(" , "):
            slot, _, target = entry.strip(" ,").partition(" : ")
            out.append((int(slot), target.strip()))
        i = j + 1
        return tuple(out)

    while i < len(toks):
        tok = peek()
        sel = selector()
        if sel is not None:
            keys = [sel]
            i += 1 if " " not in sel else 2
            while peek() == ".":
                i += 1
                nxt = selector()
                if nxt is None:
                    raise ParseError(f"unknown concatenation part {peek()!r}")
                keys.append(nxt)
                i += 1 if " " not in nxt else 2
            if peek() == "vmap":
                i += 1
                if peek().startswith("@"):
                    terms.append(Term("vmap", tuple(keys), values=(peek(),)))
                    i += 1
                    continue
                raise ParseError("anonymous vmap lookups are not modelled")
            negated = False
            if peek() in ("!=", "=="):
                negated = peek() == "!="
                i += 1
            if not peek():
                raise ParseError(f"{sel} without a value")
            terms.append(Term("match", tuple(keys), negated, values()))
            continue
        if tok == "xt" and peek(1) == "match" and peek(2) == '"comment"':
            i += 3  # why: iptables-nft's `-m comment` (nft -j shows it as xt) matches everything
            continue
        if tok == "fib" and peek(1) in ("saddr", "daddr") and peek(2) == "type":
            which = peek(1)
            i += 3
            negated = peek() == "!="
            if peek() in ("!=", "=="):
                i += 1
            terms.append(Term("fib", negated=negated, values=values(), arg=which))
            continue
        if tok == "ct" and peek(1) in ("state", "status"):
            kind = f"ct_{peek(1)}"
            i += 2
            negated = peek() == "!="
            if peek() in ("!=", "=="):
                i += 1
            vals = tuple(v for part in values() for v in part.split(","))
            terms.append(Term(kind, negated=negated, values=vals))
            continue
        if tok in ("meta", "mark") and (tok == "mark" or peek(1) == "mark"):
            i += 1 if tok == "mark" else 2
            if peek() == "set":
                # `meta mark set meta mark | 0x4000` / `mark set mark or 0x4000`
                i += 1
                if peek() == "meta":
                    i += 1
                if peek() != "mark":
                    value = peek()
                    i += 1
                    terms.append(Term("mark_set", arg="=", number=int(value, 0)))
                    continue
                i += 1
                op = {"|": "|", "or": "|", "^": "^", "xor": "^", "&": "&", "and": "&"}.get(peek())
                if op is None:
                    raise ParseError(f"mark set with {peek()!r}")
                terms.append(Term("mark_set", arg=op, number=int(peek(1), 0)))
                i += 2
                continue
            # `meta mark & 0x4000 == 0` / `mark and 0x4000 != 0x0`
            if peek() in ("&", "and"):
                mask = int(peek(1), 0)
                i += 2
            else:
                mask = 0xFFFFFFFF
            negated = peek() == "!="
            if peek() in ("!=", "=="):
                i += 1
            wanted = int(peek(), 0)
            i += 1
            terms.append(Term("mark_test", negated=negated, values=(str(wanted),), number=mask))
            continue
        if tok == "numgen":
            if peek(1) != "random" or peek(2) != "mod":
                raise ParseError("numgen other than `random mod N`")
            modulus = int(peek(3))
            i += 4
            if peek() != "vmap":
                raise ParseError("numgen without a vmap")
            i += 1
            terms.append(Term("numgen_vmap", number=modulus, mapping=slots()))
            continue
        if tok in ("jump", "goto"):
            terms.append(Term("verdict", arg=f"{tok} {peek(1)}"))
            i += 2
            continue
        if tok in ("return", "accept", "drop", "continue"):
            terms.append(Term("verdict", arg=tok))
            i += 1
            continue
        if tok == "reject":
            terms.append(Term("verdict", arg="reject"))
            break  # `reject with ...` options end the rule
        if tok in ("dnat", "snat"):
            i += 1
            if peek() in ("ip", "ip6"):
                i += 1
            if peek() != "to":
                raise ParseError(f"{tok} without `to`")
            i += 1
            if tok == "dnat" and peek() == "numgen":
                if peek(1) != "random" or peek(2) != "mod" or peek(4) != "map":
                    raise ParseError("dnat numgen other than `random mod N map { ... }`")
                modulus = int(peek(3))
                i += 5
                terms.append(Term("dnat_numgen", number=modulus, mapping=slots()))
            else:
                terms.append(Term(tok, arg=peek()))
                i += 1
            while peek() in ("fully-random", "random", "persistent"):
                i += 1
            continue
        if tok == "masquerade":
            i += 1
            flags = []
            while peek() in ("fully-random", "random", "persistent"):
                flags.append(peek())
                i += 1
            terms.append(Term("masquerade", arg=" ".join(flags)))
            continue
        raise ParseError(f"unknown expression {tok!r}")
    return terms


def _key_value(key: str, packet: Packet) -> str | None:
    if key in ("ip saddr", "ip6 saddr"):
        return str(packet.src)
    if key in ("ip daddr", "ip6 daddr"):
        return str(packet.dst)
    if key in ("meta l4proto", "ip protocol"):
        return packet.proto
    if key.endswith(" dport") or key.endswith(" sport"):
        proto = key.split()[0]
        if proto != "th" and proto != packet.proto:
            return None
        port = packet.dport if key.endswith("dport") else packet.sport
        return None if port is None else str(port)
    if key in ("meta iifname", "iifname"):
        return packet.in_iface
    if key in ("meta oifname", "oifname"):
        return packet.out_iface
    return None


def part_matches(element: str, value: str) -> bool:
    """One element part (address, prefix, range, port, port range, proto) against a value."""
    element = element.strip().strip('"')
    if element == value:
        return True
    try:
        if "/" in element:
            return ipaddress.ip_address(value) in ipaddress.ip_network(element, strict=False)
        if "-" in element:
            low, _, high = element.partition("-")
            if low.isdigit() and high.isdigit() and value.isdigit():
                return int(low) <= int(value) <= int(high)
            lo, ip, hi = (ipaddress.ip_address(x.strip()) for x in (low, value, high))
            if not lo.version == ip.version == hi.version:
                return False
            return int(lo) <= int(ip) <= int(hi)
    except ValueError:
        return False
    if element.endswith("*"):
        return value.startswith(element[:-1])
    return False


def element_matches(element_key: str, values: list[str]) -> bool:
    parts = [p.strip() for p in element_key.split(" . ")]
    return len(parts) == len(values) and all(
        part_matches(p, v) for p, v in zip(parts, values, strict=True)
    )


def key_values(keys: tuple[str, ...], packet: Packet) -> list[str] | None:
    out = []
    for key in keys:
        value = _key_value(key, packet)
        if value is None:
            return None
        out.append(value)
    return out


def fib_type_matches(term: Term, packet: Packet, netstate: NodeNetState) -> bool | None:
    wanted = set(term.values)
    if not wanted <= {"local"}:
        return None
    if not netstate.has_addresses:
        return None
    address = packet.src if term.arg == "saddr" else packet.dst
    is_local = netstate.is_local(address)
    return is_local != term.negated

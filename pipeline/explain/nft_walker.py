"""Walk a node's nftables nat base chains the way the kernel does, for a connection's first packet.

The nat base chains of a hook run in priority order; a chain that accepts (or ends in policy
accept) hands the packet to the next one, and the first rule that sets up a NAT binding (dnat,
snat, masquerade) ends the hook. jump returns, goto does not; `numgen random mod N` splits the
walk into one path per slot target, with P = slots / N. A rule natlens cannot read or a test it
cannot evaluate is recorded on the path ("cannot follow rule ...") and not taken.
"""

from __future__ import annotations

from dataclasses import replace

from .matches import Packet
from .netstate import NodeNetState
from .nft_inputs import ChainKey, NftRule, NftRuleset
from .nft_matches import (
    Term,
    element_matches,
    fib_type_matches,
    key_values,
)
from .ruleset import Rule
from .walker import Step, WalkPath

MAX_DEPTH = 32
TESTS = ("match", "fib", "ct_state", "ct_status", "mark_test")
Outcome = tuple[WalkPath, str]  # how: continue | return | terminal


def _scale(probability: float | None, factor: float) -> float | None:
    return None if probability is None else probability * factor


def _unknown(path: WalkPath, why: str) -> WalkPath:
    return replace(path, unknowns=(*path.unknowns, why))


def _apply_mark(mark: int, term: Term) -> int:
    if term.arg == "|":
        return mark | term.number
    if term.arg == "^":
        return mark ^ term.number
    if term.arg == "&":
        return mark & term.number
    return term.number


def _slot_target(text: str) -> str:
    """`10.10.1.2 . 80` (a dnat map's data) -> `10.10.1.2:80`."""
    parts = [p.strip() for p in text.split(" . ")]
    return f"{parts[0]}:{parts[1]}" if len(parts) == 2 else parts[0]


class NftWalker:
    def __init__(self, ruleset: NftRuleset, netstate: NodeNetState) -> None:
        self.ruleset = ruleset
        self.netstate = netstate

    def walk(self, hook: str, packet: Packet, start: WalkPath | None = None) -> list[WalkPath]:
        """Every path through the nat base chains of `hook` (PREROUTING, OUTPUT, POSTROUTING)."""
        families = ("ip", "inet") if packet.dst.version == 4 else ("ip6", "inet")
        paths = [start or WalkPath(probability=1.0, mark=packet.mark)]
        ends: list[WalkPath] = []
        for base in self.ruleset.base_chains("nat", hook.lower(), families):
            going: list[WalkPath] = []
            for path in paths:
                for after, how in self._chain(base.key, packet, path, 0):
                    if how == "terminal" and after.verdict != "ACCEPT":
                        ends.append(after)
                    elif how != "terminal" and base.policy == "drop":
                        ends.append(replace(after, verdict="policy DROP"))
                    else:
                        going.append(replace(after, verdict=None))
            paths = going
        ends.extend(replace(p, verdict="policy ACCEPT") for p in paths)
        return ends

    def _chain(self, key: ChainKey, packet: Packet, path: WalkPath, depth: int) -> list[Outcome]:
        rules = self.ruleset.chains.get(key)
        if rules is None:
            return [(_unknown(path, f"chain {key[1]}/{key[2]} is not in the input"), "return")]
        if depth > MAX_DEPTH:
            return [(_unknown(path, f"jump depth > {MAX_DEPTH}"), "return")]
        done: list[Outcome] = []
        frontier = [path]
        for nft_rule in rules:
            following: list[WalkPath] = []
            for current in frontier:
                for after, how in self._rule(nft_rule, key, packet, current, depth):
                    if how == "continue":
                        following.append(after)
                    else:
                        done.append((after, how))
            frontier = following
        done.extend((p, "return") for p in frontier)
        return done

    def _rule(
        self, nft_rule: NftRule, key: ChainKey, packet: Packet, path: WalkPath, depth: int
    ) -> list[Outcome]:
        if nft_rule.terms is None:
            why = f"cannot follow rule {nft_rule.rule.ref}: {nft_rule.error}"
            return [(_unknown(path, why), "continue")]
        return self._terms(nft_rule, key, 0, packet, path, depth, fired=False)

    def _terms(
        self,
        nft_rule: NftRule,
        key: ChainKey,
        index: int,
        packet: Packet,
        path: WalkPath,
        depth: int,
        fired: bool,
    ) -> list[Outcome]:
        terms = nft_rule.terms or ()
        if index == len(terms):
            return [(path, "continue")]
        term = terms[index]
        rule = nft_rule.rule
        if term.kind in TESTS:
            result = self._test(term, key, replace(packet, mark=path.mark))
            if result is None:
                why = f"cannot follow rule {rule.ref}: `{rule.text}` (a test not modelled)"
                return [(_unknown(path, why), "continue")]
            if not result:
                return [(path, "continue")]
            return self._terms(nft_rule, key, index + 1, packet, path, depth, fired)
        data: str | None = None
        if term.kind == "vmap":
            data = self._lookup(key, term, packet)
            if data is None:
                return [(path, "continue")]  # why: a verdict map without the key: no verdict
        if not fired:
            path = replace(path, steps=(*path.steps, Step(rule.ref, rule.shown, None, rule.source)))
        if term.kind == "mark_set":
            caller = path.call_stack[-1] if path.call_stack else None
            path = replace(
                path, mark=_apply_mark(path.mark, term), mark_rule=rule, mark_caller=caller
            )
            return self._terms(nft_rule, key, index + 1, packet, path, depth, True)
        if term.kind == "verdict":
            return self._verdict(term.arg, rule, key, packet, path, depth)
        if data is not None:
            return self._verdict(data, rule, key, packet, path, depth)
        if term.kind in ("numgen_vmap", "dnat_numgen"):
            return self._numgen(term, rule, key, packet, path, depth)
        if term.kind == "dnat":
            nat = replace(rule, target="DNAT", target_args=("--to-destination", term.arg))
            return [(replace(path, verdict="DNAT", nat_rule=nat), "terminal")]
        if term.kind == "snat":
            nat = replace(rule, target="SNAT", target_args=("--to-source", term.arg))
            return [(replace(path, verdict="SNAT", nat_rule=nat), "terminal")]
        if term.kind == "masquerade":
            flags = ("--random-fully",) if "fully-random" in term.arg else ()
            nat = replace(rule, target="MASQUERADE", target_args=flags)
            return [(replace(path, verdict="MASQUERADE", nat_rule=nat), "terminal")]
        why = f"cannot follow rule {rule.ref}: statement {term.kind} is not modelled"
        return [(_unknown(path, why), "continue")]

    def _numgen(
        self, term: Term, rule: Rule, key: ChainKey, packet: Packet, path: WalkPath, depth: int
    ) -> list[Outcome]:
        modulus = term.number
        counts: dict[str, int] = {}
        for slot, target in term.mapping:
            if 0 <= slot < modulus:
                counts[target] = counts.get(target, 0) + 1
        out: list[Outcome] = []
        for target, count in counts.items():
            share = count / modulus
            note = f"numgen: {count} of {modulus} slots"
            taken = replace(path, probability=_scale(path.probability, share))
            if taken.steps:
                last = taken.steps[-1]
                taken = replace(taken, steps=(*taken.steps[:-1], replace(last, note=note)))
            if term.kind == "numgen_vmap":
                out += self._verdict(target, rule, key, packet, taken, depth)
            else:
                nat = replace(
                    rule,
                    target="DNAT",
                    target_args=("--to-destination", _slot_target(target)),
                )
                out.append((replace(taken, verdict="DNAT", nat_rule=nat), "terminal"))
        missing = modulus - sum(counts.values())
        if missing > 0:
            rest = replace(path, probability=_scale(path.probability, missing / modulus))
            out.append((rest, "continue"))
        return out

    def _verdict(
        self, verdict: str, rule: Rule, key: ChainKey, packet: Packet, path: WalkPath, depth: int
    ) -> list[Outcome]:
        word, _, target = verdict.strip().partition(" ")
        if word == "return":
            return [(path, "return")]
        if word == "accept":
            return [(replace(path, verdict="ACCEPT"), "terminal")]
        if word in ("drop", "reject"):
            return [(replace(path, verdict=word.upper()), "terminal")]
        if word == "continue":
            return [(path, "continue")]
        if word not in ("jump", "goto"):
            return [(_unknown(path, f"verdict {verdict!r} is not modelled"), "continue")]
        inside = replace(path, call_stack=(*path.call_stack, rule))
        out: list[Outcome] = []
        for after, how in self._chain((key[0], key[1], target.strip()), packet, inside, depth + 1):
            after = replace(after, call_stack=path.call_stack)
            if how == "terminal":
                out.append((after, "terminal"))
            elif word == "goto":
                out.append((after, "return"))
            else:
                out.append((after, "continue"))
        return out

    def _lookup(self, key: ChainKey, term: Term, packet: Packet) -> str | None:
        values = key_values(term.keys, packet)
        if values is None:
            return None
        found = self.ruleset.lookup((key[0], key[1], term.values[0][1:]), values)
        return found[1] if found is not None and found[0] else None

    def _test(self, term: Term, key: ChainKey, packet: Packet) -> bool | None:
        if term.kind == "match":
            values = key_values(term.keys, packet)
            if values is None:
                if any("ifname" in k for k in term.keys):
                    return None
                return False
            if len(term.values) == 1 and term.values[0].startswith("@affinity-"):
                # why: session affinity sets hold live, timed-out-as-they-go client entries;
                # the dump's elements are a snapshot, not what the first packet met
                return None
            if len(term.values) == 1 and term.values[0].startswith("@"):
                found = self.ruleset.lookup((key[0], key[1], term.values[0][1:]), values)
                if found is None:
                    return None
                hit = found[0]
            else:
                hit = any(element_matches(v, values) for v in term.values)
            return hit != term.negated
        if term.kind == "fib":
            return fib_type_matches(term, packet, self.netstate)
        if term.kind == "ct_state":
            return ("new" in term.values) != term.negated
        if term.kind == "ct_status":
            if set(term.values) != {"dnat"}:
                return None
            return packet.is_dnated != term.negated
        if term.kind == "mark_test":
            return ((packet.mark & term.number) == int(term.values[0])) != term.negated
        return None

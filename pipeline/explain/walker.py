"""Walk a nat chain the way the kernel does, for a connection's first packet.

Jumps call a chain and come back, gotos do not, RETURN leaves the chain, a built-in chain that
is left ends in its policy. Branch points (statistic, recent) split the walk into paths, each
with its probability (None when unknown). Matches natlens cannot evaluate are recorded on the
path, and the rule is treated as not matching: never assumed to match.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .matches import MatchContext, Packet, evaluate_rule
from .ruleset import BUILTIN_POLICY_CHAINS, Rule

MAX_DEPTH = 32
TERMINAL_TARGETS = ("ACCEPT", "DROP", "REJECT", "DNAT", "SNAT", "MASQUERADE", "REDIRECT")
CONTINUING_TARGETS = ("LOG", "CONNMARK", "NFLOG", "TRACE", "CT", "NOTRACK", "AUDIT")


@dataclass(frozen=True)
class Step:
    """One rule that matched, in order: `ref` is table/chain#number."""

    ref: str
    text: str
    note: str | None
    source: str

    def render(self) -> str:
        text = f"{self.ref} `{self.text}`"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class WalkPath:
    probability: float | None
    steps: tuple[Step, ...] = ()
    mark: int = 0
    mark_rule: Rule | None = None
    mark_caller: Rule | None = None
    verdict: str | None = None
    nat_rule: Rule | None = None
    unknowns: tuple[str, ...] = ()
    call_stack: tuple[Rule, ...] = ()

    @property
    def dnat_to(self) -> str | None:
        if self.nat_rule is None or self.nat_rule.target != "DNAT":
            return None
        return self.nat_rule.target_option("--to-destination")


def _scale(probability: float | None, factor: float | None) -> float | None:
    if probability is None or factor is None:
        return None
    return probability * factor


def _apply_mark(mark: int, rule: Rule) -> int:
    def value_mask(option: str) -> tuple[int, int]:
        text = rule.target_option(option) or "0"
        value, _, mask = text.partition("/")
        return int(value, 0), (int(mask, 0) if mask else 0xFFFFFFFF)

    if rule.target_option("--set-xmark") is not None:
        value, mask = value_mask("--set-xmark")
        return (mark & ~mask & 0xFFFFFFFF) ^ value
    if rule.target_option("--set-mark") is not None:
        value, mask = value_mask("--set-mark")
        return (mark & ~mask & 0xFFFFFFFF) | value
    if rule.target_option("--or-mark") is not None:
        return mark | value_mask("--or-mark")[0]
    if rule.target_option("--and-mark") is not None:
        return mark & value_mask("--and-mark")[0]
    if rule.target_option("--xor-mark") is not None:
        return mark ^ value_mask("--xor-mark")[0]
    return mark


class Walker:
    def __init__(self, ctx: MatchContext, table: str = "nat") -> None:
        self.ctx = ctx
        self.table = table

    def walk(self, chain: str, packet: Packet, start: WalkPath | None = None) -> list[WalkPath]:
        """Every path through built-in `chain`, each ending in a verdict."""
        begin = start or WalkPath(probability=1.0, mark=packet.mark)
        ends: list[WalkPath] = []
        for path, how in self._chain(chain, packet, begin, 0):
            if how == "terminal":
                ends.append(path)
            else:
                policy = self.ctx.ruleset.policies.get(chain, "ACCEPT")
                ends.append(replace(path, verdict=f"policy {policy}"))
        return ends

    def _chain(
        self, name: str, packet: Packet, path: WalkPath, depth: int
    ) -> list[tuple[WalkPath, str]]:
        rules = self.ctx.ruleset.chain(name)
        if rules is None:
            if name in BUILTIN_POLICY_CHAINS and not self.ctx.ruleset.has_rules:
                why = f"no iptables rules for {self.ctx.ruleset.node} in the input"
            else:
                why = f"chain {name} is not in the input"
            return [(replace(path, unknowns=(*path.unknowns, why)), "return")]
        if depth > MAX_DEPTH:
            return [
                (replace(path, unknowns=(*path.unknowns, f"jump depth > {MAX_DEPTH}")), "return")
            ]
        done: list[tuple[WalkPath, str]] = []
        frontier = [path]
        for rule in rules:
            next_frontier: list[WalkPath] = []
            for current in frontier:
                result = evaluate_rule(rule, replace(packet, mark=current.mark), self.ctx)
                if result.unknown:
                    why = f"{rule.ref}: {result.unknown}"
                    next_frontier.append(replace(current, unknowns=(*current.unknowns, why)))
                    continue
                if not result.matched:
                    next_frontier.append(current)
                    continue
                taken = current
                if result.is_branch:
                    p = result.probability
                    not_taken = replace(
                        current,
                        probability=_scale(current.probability, None if p is None else 1 - p),
                    )
                    next_frontier.append(not_taken)
                    taken = replace(current, probability=_scale(current.probability, p))
                step = Step(rule.ref, rule.shown, result.note, rule.source)
                taken = replace(taken, steps=(*taken.steps, step))
                for after, how in self._target(rule, packet, taken, depth):
                    if how == "continue":
                        next_frontier.append(after)
                    else:
                        done.append((after, how))
            frontier = next_frontier
        done.extend((p, "return") for p in frontier)
        return done

    def _target(
        self, rule: Rule, packet: Packet, path: WalkPath, depth: int
    ) -> list[tuple[WalkPath, str]]:
        target = rule.target
        if target is None:
            return [(path, "continue")]
        if target == "RETURN":
            return [(path, "return")]
        if target == "MARK":
            caller = path.call_stack[-1] if path.call_stack else None
            marked = replace(
                path, mark=_apply_mark(path.mark, rule), mark_rule=rule, mark_caller=caller
            )
            return [(marked, "continue")]
        if target in TERMINAL_TARGETS:
            return [(replace(path, verdict=target, nat_rule=rule), "terminal")]
        if target in CONTINUING_TARGETS:
            return [(path, "continue")]
        if target.isupper() and "-" not in target and self.ctx.ruleset.chain(target) is None:
            why = f"{rule.ref}: target {target} is not modelled"
            return [(replace(path, unknowns=(*path.unknowns, why)), "continue")]
        inside = replace(path, call_stack=(*path.call_stack, rule))
        out: list[tuple[WalkPath, str]] = []
        for after, how in self._chain(target, packet, inside, depth + 1):
            after = replace(after, call_stack=path.call_stack)
            if how == "terminal":
                out.append((after, "terminal"))
            elif rule.jump_kind == "g":
                out.append((after, "return"))
            else:
                out.append((after, "continue"))
        return out

"""Rows of the nft tables, shared by the text and the JSON reader.

Both readers call the same ``NftRows`` methods with the same values (the JSON reader renders
each rule's expressions as nft prints them), so one ruleset gives the same rows in both forms.
The columns pulled out of a rule (verdict, target, NAT, set references, counter, comment) are
read from its text by ``rule_columns`` in both cases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...schemas import (
    RAW_NFT_CHAINS,
    RAW_NFT_ELEMENTS,
    RAW_NFT_OBJECTS,
    RAW_NFT_RULES,
    RAW_NFT_SETS,
    RAW_NFT_TABLES,
)
from ..records import ParsedChunk, RecordError

Row = dict[str, Any]

# nft's standard priority names (src/rule.c std_prio_table): bridge has its own numbers.
_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50}
_PRIORITIES["srcnat"] = 100
_BRIDGE_PRIORITIES = {"dstnat": -300, "filter": -200, "out": 100, "srcnat": 300}
_PRIORITY = re.compile(r"(-?\d+|[a-z]+)(?:\s*([+-])\s*(\d+))?$")
_TIME_PART = re.compile(r"(\d+)(ms|d|h|m|s)")
_TIME_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_VERDICTS = ("accept", "drop", "reject", "return", "continue", "queue", "jump", "goto")
_NAT = ("dnat", "snat", "masquerade", "redirect")
_COUNTER = re.compile(r"counter packets (\d+) bytes (\d+)")


class BadRecordError(ValueError):
    """A record that cannot be used; the message is the RecordError reason."""


def priority_number(text: str, family: str) -> int:
    """``dstnat``, ``srcnat - 10``, ``-110`` -> the number nft means; BadRecordError if not."""
    m = _PRIORITY.match(text.strip())
    if m is None:
        raise BadRecordError(f"priority {text!r} is neither a number nor a standard name")
    base, sign, delta = m.groups()
    names = _BRIDGE_PRIORITIES if family == "bridge" else _PRIORITIES
    if base.lstrip("-").isdigit():
        value = int(base)
    elif base in names:
        value = names[base]
    else:
        raise BadRecordError(f"unknown priority name {base!r} for family {family}")
    if delta is not None:
        value += int(delta) if sign == "+" else -int(delta)
    return value


def seconds(text: str) -> int:
    """nft time ``1d2h3m4s`` / ``500ms`` -> whole seconds; BadRecordError if not a time."""
    text = text.strip()
    if not text or _TIME_PART.sub("", text):
        raise BadRecordError(f"{text!r} is not an nft time (like 3h or 1d2h30m)")
    return int(sum(int(n) * _TIME_UNITS[u] for n, u in _TIME_PART.findall(text)))


def time_text(value: float) -> str:
    """Seconds -> nft's time notation (3h, 1d2h, 10800 -> 3h); 0 -> 0s."""
    ms = round(value * 1000)
    out = ""
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out or "0s"


def split_top(text: str, sep: str) -> list[str]:
    """Split at `sep` outside quotes and braces/parentheses; BadRecordError when unbalanced."""
    parts: list[str] = []
    depth, quoted, start, i = 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "{(":
            depth += 1
        elif not quoted and ch in "})":
            depth -= 1
            if depth < 0:
                raise BadRecordError(f"unbalanced '{ch}'")
        elif not quoted and depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i = i + len(sep)
            continue
        i += 1
    if quoted:
        raise BadRecordError("unbalanced double quote: the line was probably cut short")
    if depth:
        raise BadRecordError("unclosed '{': the line was probably cut short")
    parts.append(text[start:])
    return parts


def normalize(text: str) -> str:
    """Collapse runs of blanks outside double quotes (iptables-nft rules print double spaces)."""
    out: list[str] = []
    for i, part in enumerate(text.strip().split('"')):
        out.append(part if i % 2 else re.sub(r"\s+", " ", part))
    return '"'.join(out)


def words(text: str) -> list[tuple[str, int]]:
    """Words of a rule with their brace depth; a quoted string is one word (quotes kept)."""
    depth, out = 0, []
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[{}]|[^\s{},]+', text):
        word = m.group()
        if word == "{":
            depth += 1
        elif word == "}":
            depth -= 1
        else:
            out.append((word, depth))
    return out


def _is_nat_statement(top: list[str], i: int) -> bool:
    """``dnat to``/``snat ip to`` are statements; ``ct status dnat`` is a match."""
    if top[i] in ("masquerade", "redirect"):
        return i == 0 or top[i - 1] != "status"
    after = top[i + 1 : i + 3]
    return after[:1] == ["to"] or (after[:1] in (["ip"], ["ip6"]) and after[1:] == ["to"])


def rule_columns(rule: str) -> Row:
    """Verdict, target, NAT, set references, counter and comment of a rule's text."""
    row: Row = {"set_refs": re.findall(r"@([A-Za-z_.][\w./-]*)", rule)}
    top = [w for w, depth in words(rule) if depth == 0]
    for i, word in enumerate(top):
        if word == "vmap" and "verdict" not in row:
            row["verdict"] = "vmap"
        elif word in _VERDICTS and "verdict" not in row:
            row["verdict"] = word
            if word in ("jump", "goto") and i + 1 < len(top):
                row["target"] = top[i + 1]
        elif word in _NAT and "nat" not in row and _is_nat_statement(top, i):
            row["nat"] = word
    if "nat" in row:
        m = re.search(rf"\b{row['nat']}\b(.*?)(?:\s+comment\s+\".*\")?$", rule)
        row["nat_args"] = (m.group(1).strip() or None) if m else None
    m = re.search(r'\bcomment\s+("(?:[^"\\]|\\.)*")\s*$', rule)
    if m:
        row["comment"] = m.group(1)[1:-1]
    counter = _COUNTER.search(rule)
    if counter:
        row["pkts"], row["bytes"] = int(counter.group(1)), int(counter.group(2))
    return row


@dataclass
class NftRows:
    """Collects the rows of one file and its record bookkeeping."""

    fmt: str
    chunk: ParsedChunk = field(default_factory=ParsedChunk)
    tables: list[Row] = field(default_factory=list)
    chains: list[Row] = field(default_factory=list)
    sets: list[Row] = field(default_factory=list)
    elements: list[Row] = field(default_factory=list)
    rules: list[Row] = field(default_factory=list)
    objects: list[Row] = field(default_factory=list)
    positions: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def reject(self, reason: str, raw: str, line: int | None, offset: int | None = None) -> None:
        self.chunk.records_read += 1
        self.chunk.errors.append(RecordError(reason, raw, line=line, offset=offset))

    def warn(self, reason: str, raw: str, line: int | None) -> None:
        self.chunk.errors.append(RecordError(reason, raw, line=line, is_rejection=False))

    def add(self, rows: list[Row], row: Row) -> Row:
        self.chunk.records_read += 1
        self.chunk.records_parsed += 1
        row["format"] = self.fmt
        rows.append(row)
        return row

    def next_position(self, family: str, table: str, chain: str) -> int:
        key = (family, table, chain)
        self.positions[key] = self.positions.get(key, 0) + 1
        return self.positions[key]

    def add_rule(self, row: Row, rule: str) -> None:
        row.update(rule_columns(rule))
        row["rule"] = rule
        self.add(self.rules, row)

    def unparse_last(self, rows: list[Row], reason: str, raw: str) -> None:
        """Turn the last parsed row of `rows` into a rejected record (a cut-off last line)."""
        row = rows.pop()
        self.chunk.records_parsed -= 1
        self.chunk.records_read -= 1
        self.reject(reason, raw, row["source_line"])

    def finish(self) -> ParsedChunk:
        counts: dict[tuple[Any, ...], int] = {}
        for el in self.elements:
            key = (el["family"], el["table_name"], el["set_name"])
            counts[key] = counts.get(key, 0) + 1
        for row in self.sets:
            key = (row["family"], row["table_name"], row["name"])
            row.setdefault("element_count", counts.get(key, 0))
        self.chunk.frames = {
            RAW_NFT_TABLES.name: RAW_NFT_TABLES.frame(self.tables),
            RAW_NFT_CHAINS.name: RAW_NFT_CHAINS.frame(self.chains),
            RAW_NFT_SETS.name: RAW_NFT_SETS.frame(self.sets),
            RAW_NFT_ELEMENTS.name: RAW_NFT_ELEMENTS.frame(self.elements),
            RAW_NFT_RULES.name: RAW_NFT_RULES.frame(self.rules),
            RAW_NFT_OBJECTS.name: RAW_NFT_OBJECTS.frame(self.objects),
        }
        return self.chunk


def split_element(text: str) -> Row:
    """``KEY [timeout T] [expires E] [comment "c"] [: VALUE]`` -> element columns."""
    parts = split_top(text, " : ")
    if len(parts) > 2:
        raise BadRecordError("element has more than one ' : '")
    key_part = parts[0].strip()
    value = parts[1].strip() if len(parts) == 2 else None
    comment = None
    m = re.search(r'\s+comment\s+("(?:[^"\\]|\\.)*")$', key_part)
    if m:
        comment, key_part = m.group(1)[1:-1], key_part[: m.start()]
    options = None
    m = re.search(r"\s+((?:timeout|expires|counter)\s.*)$", key_part)
    if m:
        options, key_part = m.group(1), key_part[: m.start()]
    if not key_part or (value is not None and not value):
        raise BadRecordError("element has an empty key or value: cut short?")
    return {
        "element": normalize(text),
        "key": key_part,
        "value": value,
        "comment": comment,
        "options": options,
    }

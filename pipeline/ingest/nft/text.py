"""``nft list ruleset`` text (also ``list table``, ``list tables``, ``-a`` handles).

Records: a table line, a chain, a set or map, each set element, each rule, each other named
object (counter, quota, flowtable, ...). Structure lines (``}``, ``type ... hook ...;``, a set's
``type``/``flags``/``comment`` lines, blank lines) belong to the record they describe.

A rule is kept as nft printed it (blanks collapsed, ``# handle N`` taken off); it is rejected
when its quotes or braces do not balance or its first word starts no nft expression or
statement. A ruleset that ends inside a block (cut short) gets a warning for each open block,
and its last rule or element, which may be cut in the middle, is rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..records import ParsedChunk, iter_lines
from .rows import (
    BadRecordError,
    NftRows,
    Row,
    normalize,
    priority_number,
    seconds,
    split_element,
    split_top,
)

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
_NAME = r'(?:"[^"]*"|[^\s{}"]+)'
TABLE = re.compile(rf"table\s+({'|'.join(FAMILIES)})\s+({_NAME})\s*(\{{)?$")
_BLOCK = re.compile(
    rf"(chain|set|map|flowtable|counter|quota|limit|secmark|synproxy|ct helper|ct timeout"
    rf"|ct expectation)\s+({_NAME})\s*\{{$"
)
_HANDLE = re.compile(r"\s*#\s*handle\s+(\d+)$")
_BASE = re.compile(
    r"type\s+(\S+)\s+hook\s+(\S+)(?:\s+device(?:s\s*=\s*\{[^}]*\}|\s+(\S+)))?"
    r"\s+priority\s+([^;]+);(?:\s*policy\s+(\w+);)?"
)
_COMMENT = re.compile(r'comment\s+"((?:[^"\\]|\\.)*)"$')
_RULE_START = frozenset(
    """ip ip6 inet tcp udp udplite sctp dccp th icmp icmpv6 igmp ah esp comp ether vlan arp
    meta ct fib rt socket osf iifname oifname iif oif iiftype oiftype iifgroup oifgroup mark
    skuid skgid nfproto l4proto priority length protocol pkttype cpu rtclassid ibrname obrname
    ibriport obriport numgen jhash symhash counter limit log nflog quota reject drop accept
    return continue queue jump goto dnat snat masquerade redirect notrack tproxy fwd dup add
    update delete set synproxy exthdr hbh rt0 rt2 srh frag dst mh ipsec xt secmark meter
    vmap cgroupv2 time day hour random last tcpopt dccp gre vxlan geneve gretap icmpx flow
    ip6h""".split()
)


def _name(text: str) -> str:
    return text[1:-1] if text.startswith('"') else text


def _handle(text: str) -> tuple[str, int | None]:
    m = _HANDLE.search(text)
    return (text[: m.start()], int(m.group(1))) if m else (text, None)


@dataclass
class _Block:
    kind: str
    row: Row
    line: int
    elements: list[str] | None = None  # open 'elements = {' text, per line
    depth: int = 0
    pending: list[tuple[int, str]] = field(default_factory=list)


class TextParser:
    def __init__(self) -> None:
        self.out = NftRows("text")
        self.stack: list[_Block] = []
        self.last_record: tuple[list[Row], int] | None = None  # rules only

    @property
    def table(self) -> _Block | None:
        return self.stack[0] if self.stack else None

    def run(self, text: str) -> ParsedChunk:
        last_line = 0
        for line in iter_lines(text):
            if not line.text:
                continue
            last_line = line.no
            self.feed(line.no, line.text, line.raw)
        self.eof(last_line)
        return self.out.finish()

    def feed(self, no: int, text: str, raw: str) -> None:
        top = self.stack[-1] if self.stack else None
        if top is not None and top.elements is not None:
            self.element_text(top, no, text, raw)
            return
        if text.startswith("#"):  # '# Warning: table ip nat is managed by iptables-nft'
            return
        if text == "}":
            if top is None:
                self.out.reject("'}' closes no table", raw, no)
            else:
                self.stack.pop()
            return
        body, handle = _handle(text)
        if top is None:
            self.table_line(no, body, handle, raw)
        elif top.kind == "table":
            self.in_table(top, no, body, handle, raw)
        elif top.kind == "chain":
            self.in_chain(top, no, body, handle, raw)
        elif top.kind in ("set", "map"):
            self.in_set(top, no, body, raw)
        # other objects: their body lines describe them (counter values, hooks): structural

    def table_line(self, no: int, body: str, handle: int | None, raw: str) -> None:
        m = TABLE.match(body)
        if m is None:
            self.out.reject("not an nft list ruleset line outside a table", raw, no)
            return
        row = {"source_line": no, "family": m.group(1), "table_name": _name(m.group(2))}
        row["handle"] = handle
        self.out.add(self.out.tables, row)
        if m.group(3):
            self.stack.append(_Block("table", row, no))

    def in_table(self, top: _Block, no: int, body: str, handle: int | None, raw: str) -> None:
        m = _BLOCK.match(body)
        base = {"source_line": no, "family": top.row["family"]}
        base["table_name"] = top.row["table_name"]
        if m is not None:
            kind, name = m.group(1), _name(m.group(2))
            if kind == "chain":
                row = self.out.add(self.out.chains, {**base, "chain": name, "handle": handle})
            elif kind in ("set", "map"):
                row = {**base, "name": name, "kind": kind, "handle": handle}
                self.out.add(self.out.sets, row)
            else:
                row = {**base, "kind": kind, "name": name, "handle": handle}
                self.out.add(self.out.objects, row)
            self.stack.append(_Block(kind, row, no))
            return
        comment = _COMMENT.match(body)
        if comment:
            top.row["comment"] = comment.group(1)
        elif body.startswith("flags "):
            top.row["flags"] = [f.strip() for f in body[6:].split(",")]
        else:
            self.out.reject(f"not a table member line in table {top.row['table_name']}", raw, no)

    def in_chain(self, top: _Block, no: int, body: str, handle: int | None, raw: str) -> None:
        chain = top.row
        if body.startswith("type ") and handle is None:
            m = _BASE.match(body)
            try:
                if m is None:
                    raise BadRecordError("base chain line is not 'type T hook H priority P;'")
                device = m.group(3).strip('"') if m.group(3) else None
                chain.update(chain_type=m.group(1), hook=m.group(2), device=device)
                chain["priority"] = priority_number(m.group(4), chain["family"])
                chain["policy"] = m.group(5)
            except BadRecordError as exc:
                self.out.warn(f"chain {chain['chain']}: {exc}", raw, no)
            return
        comment = _COMMENT.match(body)
        if comment and handle is None and not self.out.positions.get(self.chain_key(top)):
            chain["comment"] = comment.group(1)
            return
        position = self.out.next_position(*self.chain_key(top))
        rule = normalize(body)
        first = rule.split(" ", 1)[0]
        try:
            split_top(rule, "\x00")  # balance check only
            if first not in _RULE_START and not first.startswith("@"):
                raise BadRecordError(f"{first!r} starts no nft expression or statement")
        except BadRecordError as exc:
            self.out.reject(f"chain {chain['chain']}: {exc}", raw, no)
            return
        row = {"source_line": no, "family": chain["family"], "table_name": chain["table_name"]}
        row.update(chain=chain["chain"], position=position, handle=handle)
        self.out.add_rule(row, rule)
        self.last_record = (self.out.rules, no)

    def chain_key(self, top: _Block) -> tuple[str, str, str]:
        return (top.row["family"], top.row["table_name"], top.row["chain"])

    def in_set(self, top: _Block, no: int, body: str, raw: str) -> None:
        row = top.row
        word, _, rest = body.partition(" ")
        try:
            if word in ("type", "typeof"):
                key, _, data = rest.partition(" : ")
                row["key_type"] = key.strip() if word == "type" else f"typeof {key.strip()}"
                row["data_type"] = data.strip() or None
            elif word == "flags":
                row["flags"] = [f.strip() for f in rest.split(",")]
            elif word == "timeout":
                row["timeout_s"] = seconds(rest)
            elif word == "size":
                row["size"] = int(rest)
            elif word == "policy":
                row["policy"] = rest.strip()
            elif _COMMENT.match(body):
                row["comment"] = _COMMENT.match(body).group(1)  # type: ignore[union-attr]
            elif word == "elements" and rest.startswith("= {"):
                top.elements, top.depth = [], 1
                self.element_text(top, no, rest[3:], raw)
            # gc-interval, auto-merge, counter: structural
        except (BadRecordError, ValueError) as exc:
            self.out.warn(f"set {row['name']}: {exc}", raw, no)

    def element_text(self, top: _Block, no: int, text: str, raw: str) -> None:
        """Feed one line of an ``elements = { ... }`` list; each element is a record."""
        quoted = False
        for i, ch in enumerate(text):
            if ch == '"':
                quoted = not quoted
            elif not quoted and ch in "{}":
                top.depth += 1 if ch == "{" else -1
                if top.depth == 0:
                    if text[i + 1 :].strip():
                        self.out.warn("text after the closing '}' of elements ignored", raw, no)
                    top.pending.append((no, text[:i]))
                    self.emit_elements(top, top.pending)
                    top.elements, top.pending = None, []
                    return
        top.pending.append((no, text))

    def emit_elements(self, top: _Block, pending: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Add every element of `pending` (lines of the list); return the pieces found."""
        body, spans = "", []
        for no, text in pending:
            spans.append((len(body), no))
            body += text + " "
        try:
            parts = split_top(body, ",")
        except BadRecordError as exc:
            self.out.reject(f"set {top.row['name']}: elements: {exc}", body.strip(), pending[0][0])
            return []
        pieces, pos = [], 0
        for part in parts:
            start = pos + len(part) - len(part.lstrip())
            line = next(n for o, n in reversed(spans) if o <= start)
            pieces.append((line, part))
            pos += len(part) + 1
        for line, part in pieces:
            self.add_element(top, line, part)
        return pieces

    def add_element(self, top: _Block, no: int, piece: str) -> None:
        if not piece.strip():
            return
        base = {"source_line": no, "family": top.row["family"]}
        base.update(table_name=top.row["table_name"], set_name=top.row["name"])
        position = top.row["_elements"] = top.row.get("_elements", 0) + 1
        try:
            row = {**base, "position": position, **split_element(piece)}
        except BadRecordError as exc:
            self.out.reject(f"set {top.row['name']}: {exc}", piece.strip(), no)
            return
        self.out.add(self.out.elements, row)

    def eof(self, last_line: int) -> None:
        if not self.stack:
            return
        top = self.stack[-1]
        if top.elements is not None and top.pending:
            *complete, (no, cut) = self.split_pending(top)
            for line, part in complete:
                self.add_element(top, line, part)
            self.out.reject(
                f"set {top.row['name']}: the file ends inside its elements: cut short", cut, no
            )
        elif self.last_record is not None and self.last_record[1] == last_line:
            reason = "the file ends after this rule without closing its blocks: it may be cut"
            self.out.unparse_last(self.out.rules, reason, self.out.rules[-1]["rule"])
        for block in reversed(self.stack):
            name = block.row.get("chain") or block.row.get("name") or block.row.get("table_name")
            self.out.warn(
                f"the file ends inside {block.kind} {name} (opened at line {block.line}) without"
                " its closing '}': the ruleset was cut short",
                "",
                last_line,
            )
        self.stack = []

    def split_pending(self, top: _Block) -> list[tuple[int, str]]:
        """The pieces of an unclosed element list (the last may be cut in the middle)."""
        body, spans = "", []
        for no, text in top.pending:
            spans.append((len(body), no))
            body += text + " "
        pieces, start, quoted, depth = [], 0, False, 0
        for i, ch in enumerate(body + ","):
            if ch == '"':
                quoted = not quoted
            elif not quoted and ch in "{(":
                depth += 1
            elif not quoted and ch in "})":
                depth -= 1
            elif not quoted and depth <= 0 and ch == ",":
                part = body[start:i]
                at = start + len(part) - len(part.lstrip())
                pieces.append((next(n for o, n in reversed(spans) if o <= at), part))
                start = i + 1
        return [(n, p) for n, p in pieces if p.strip()] or [(top.pending[0][0], "")]


def parse_text(text: str) -> ParsedChunk:
    return TextParser().run(text)

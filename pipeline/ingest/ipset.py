"""ipset ingestor: ``ipset list`` (also ``-t`` header-only listings) and ``ipset save``.

``ipset list`` prints per set ``Name:``, ``Type:``, ``Revision:``, ``Header:``, ``Size in memory:``,
``References:``, ``Number of entries:`` (ipset >= 6.30), ``Members:`` and then one member per line
(a blank line separates sets; ``-t`` leaves out ``Members:``). The header lines are one record (the
set); each member line is one record. A member section runs until the next ``Name:`` line, so blank
lines pasted between members do not end it. A header line with a bad value is rejected on its own.

``ipset save`` prints ``create NAME TYPE OPTIONS`` and ``add NAME ELEMENT [OPTIONS]``.

Members are split by the set type's dimensions (``hash:ip,port`` -> ip, proto:port): ``ip``/``net``
parts go to ``ip`` then ``ip2``, ``port`` parts to ``proto`` and ``port`` (bitmap:port prints a bare
number), other parts (mac, iface, mark) and the options after the element (``timeout 3599``,
``packets 1 bytes 60``, ``nomatch``, ``comment "x"``) to ``extra``, as printed. When the listed
member count differs from ``Number of entries:`` a warning (not a rejection) is recorded.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from ..schemas import RAW_IPSET_MEMBERS, RAW_IPSET_SETS
from .blocks import BlockStart
from .records import Detection, ParsedChunk, RecordError, clean_line, iter_lines

KINDS: tuple[str, ...] = ("ipset-list", "ipset-save")

_TYPE = r"(?:hash|bitmap|list):[a-z0-9,]+"
_FIELD = re.compile(
    r"(Name|Type|Revision|Header|Size in memory|References|Number of entries):(.*)$"
)
_LIST_MARKS = (
    re.compile(rf"Type: {_TYPE}$"),
    re.compile(r"Name: \S+$"),
    re.compile(r"Revision: \d+$"),
    re.compile(r"Header: .*"),
    re.compile(r"Size in memory: \d+$"),
    re.compile(r"References: \d+$"),
    re.compile(r"Number of entries: \d+$"),
    re.compile(r"Members:$"),
)
_CREATE = re.compile(rf"create\s+(\S+)\s+({_TYPE})(?:\s+(.*))?$")
_ADD = re.compile(r"add\s+(\S+)\s+(\S+)(?:\s+(.*))?$")
_FAMILY = re.compile(r"(?:^|\s)family\s+(inet6?)(?:\s|$)")
_PROTO_PORT = re.compile(r"(?:([a-z][a-z0-9-]*):)?([^:]+)$")
_INT_FIELDS = {
    "Revision": "revision",
    "Size in memory": "size_in_memory",
    "References": "references",
    "Number of entries": "number_of_entries",
}


class _RejectError(Exception):
    """A member or header line that cannot be parsed; the message is the reason."""


def detect(text: str) -> Detection | None:
    listed = saved = 0
    has_type = False
    for raw in text.splitlines():
        line = clean_line(raw)
        if any(mark.match(line) for mark in _LIST_MARKS):
            listed += 1
            has_type = has_type or line.startswith("Type:")
        elif _CREATE.match(line):
            saved += 2  # a create line names an ipset type: count it like Name + Type
        elif line.startswith("add ") and _ADD.match(line):
            saved += 1
    if not has_type:
        listed = 0  # "Name:"/"Header:" alone are not ipset (kubectl describe prints them too)
    if listed == 0 and saved < 2:
        return None
    return Detection("ipset-list" if listed >= saved else "ipset-save", max(listed, saved))


def _address(part: str) -> str:
    """Validate an address, network or a-b range element part; return it as printed."""
    try:
        if "-" in part:
            for end in part.split("-", 1):
                ipaddress.ip_address(end)
        else:
            ipaddress.ip_network(part, strict=False)
    except ValueError:
        raise _RejectError(f"{part!r} is not an address or network") from None
    return part


def split_member(element: str, options: str, set_type: str | None) -> dict[str, Any]:
    """Split one member into ip/ip2/proto/port/extra by the set type's dimensions."""
    if options.count('"') % 2:
        raise _RejectError("unbalanced double quote in the member's options: line cut short?")
    row: dict[str, Any] = {"member": element}
    extra = []
    if set_type is not None and not set_type.startswith("list:"):
        dims = set_type.split(":", 1)[1].split(",")
        parts = element.split(",")
        if len(parts) != len(dims):
            raise _RejectError(
                f"member {element!r} has {len(parts)} part(s) but {set_type} has {len(dims)}"
            )
        for dim, part in zip(dims, parts, strict=True):
            if dim in ("ip", "net"):
                row["ip2" if "ip" in row else "ip"] = _address(part)
            elif dim == "port":
                m = _PROTO_PORT.match(part)
                if m is None or (m.group(1) is None and not m.group(2).isdigit()):
                    raise _RejectError(f"{part!r} is not [proto:]port: cut short?")
                row["proto"] = m.group(1)
                if m.group(2).isdigit() and int(m.group(2)) <= 65535:
                    row["port"] = int(m.group(2))
                elif m.group(1) in ("icmp", "icmpv6"):
                    extra.append(part)  # icmp:echo-request / icmp:8/0 has no port
                else:
                    raise _RejectError(f"port {m.group(2)!r} of {part!r} is not 0-65535")
            else:
                extra.append(part)
    row["extra"] = " ".join(filter(None, (",".join(extra), options))) or None
    return row


@dataclass
class _Set:
    line: int
    row: dict[str, Any]
    has_members: bool = False
    members: int = 0
    raw: list[str] = field(default_factory=list)


class _Parser:
    def __init__(self, kind: str) -> None:
        self.fmt = "save" if kind == "ipset-save" else "list"
        self.chunk = ParsedChunk()
        self.sets: list[_Set] = []
        self.by_name: dict[str, _Set] = {}
        self.members: list[dict[str, Any]] = []
        self.current: _Set | None = None

    def reject(self, reason: str, raw: str, line: int) -> None:
        self.chunk.errors.append(RecordError(reason, raw, line=line))

    def new_set(self, no: int, raw: str, name: str, set_type: str | None) -> _Set:
        self.chunk.records_read += 1
        self.chunk.records_parsed += 1
        new = _Set(no, {"source_line": no, "format": self.fmt, "set_name": name})
        new.row["set_type"] = set_type
        new.raw.append(raw)
        self.sets.append(new)
        self.by_name[name] = new
        return new

    def add_member(self, no: int, raw: str, the_set: _Set | None, name: str, text: str) -> None:
        self.chunk.records_read += 1
        element, _, options = text.partition(" ")
        try:
            set_type = the_set.row["set_type"] if the_set else None
            row = split_member(element, options.strip(), set_type)
        except _RejectError as exc:
            self.reject(str(exc), raw, no)
            return
        row.update(source_line=no, format=self.fmt, set_name=name)
        self.members.append(row)
        self.chunk.records_parsed += 1
        if the_set is not None:
            the_set.members += 1

    def feed_list(self, no: int, text: str, raw: str) -> None:
        m = _FIELD.match(text)
        if m and m.group(1) == "Name" and m.group(2).strip():
            self.current = self.new_set(no, raw, m.group(2).strip(), None)
            return
        cur = self.current
        if text == "Members:" and cur is not None and not cur.has_members:
            cur.has_members = True
            cur.raw.append(raw)
            return
        if m and cur is not None and not cur.has_members:
            key, value = m.group(1), m.group(2).strip()
            if key in _INT_FIELDS and value.isdigit():
                cur.row[_INT_FIELDS[key]] = int(value)
            elif key == "Type" and re.fullmatch(_TYPE, value):
                cur.row["set_type"] = value
            elif key == "Header":
                cur.row["header"] = value
                family = _FAMILY.search(value)
                cur.row["family"] = family.group(1) if family else None
            else:
                self.chunk.records_read += 1
                self.reject(f"bad {key}: value {value!r}", raw, no)
                return
            cur.raw.append(raw)
            return
        if cur is not None and cur.has_members:
            self.add_member(no, raw, cur, cur.row["set_name"], text)
            return
        self.chunk.records_read += 1
        self.reject("not an ipset list line (outside a set's header or members)", raw, no)

    def feed_save(self, no: int, text: str, raw: str) -> None:
        create = _CREATE.match(text)
        if create:
            header = create.group(3) or ""
            the_set = self.new_set(no, raw, create.group(1), create.group(2))
            family = _FAMILY.search(header)
            the_set.row.update(header=header or None, family=family.group(1) if family else None)
            the_set.has_members = True
            return
        add = _ADD.match(text)
        if add:
            name = add.group(1)
            self.add_member(
                no, raw, self.by_name.get(name), name, f"{add.group(2)} {add.group(3) or ''}"
            )
            return
        self.chunk.records_read += 1
        word = text.split()[0]
        if word in ("create", "add"):
            self.reject(f"incomplete {word} line: expected '{word} SET ...'; cut short?", raw, no)
        else:
            self.reject(f"{word!r} is not a line of ipset save (create/add)", raw, no)

    def result(self) -> ParsedChunk:
        for the_set in self.sets:
            row = the_set.row
            row["members_listed"] = the_set.members if the_set.has_members else None
            expected = row.get("number_of_entries")
            if the_set.has_members and expected is not None and expected != the_set.members:
                self.chunk.errors.append(
                    RecordError(
                        f"set {row['set_name']}: 'Number of entries: {expected}' but"
                        f" {the_set.members} member(s) listed (listing cut short or edited?)",
                        "\n".join(the_set.raw),
                        line=the_set.line,
                        is_rejection=False,
                    )
                )
        self.chunk.frames = {
            RAW_IPSET_SETS.name: RAW_IPSET_SETS.frame([s.row for s in self.sets]),
            RAW_IPSET_MEMBERS.name: RAW_IPSET_MEMBERS.frame(self.members),
        }
        return self.chunk


def parse(text: str, kind: str) -> ParsedChunk:
    parser = _Parser(kind)
    for line in iter_lines(text):
        if not line.text:
            continue
        if kind == "ipset-save":
            parser.feed_save(line.no, line.text, line.raw)
        else:
            parser.feed_list(line.no, line.text, line.raw)
    return parser.result()


def block_start(kind: str) -> BlockStart | None:
    """A long listing may be cut before a set (``create``, ``Name:``): members follow their set."""
    mark = "create " if kind == "ipset-save" else "Name:"
    return lambda line: clean_line(line).startswith(mark)

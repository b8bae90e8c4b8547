"""One text record of conntrack -L / -o extended,id,ktimestamp / -E / /proc -> one row.

The order is the one __snprintf_conntrack_default() (and the kernel's ct_seq_show()) prints:

    [epoch.usec]  [NEW]  ipv4 2  tcp 6  timeout  STATE  (gre protoinfo in /proc)
    src= dst= sport= dport= | type= code= id= | srckey= dstkey=   zone-orig=  packets= bytes=
    [UNREPLIED]  src= dst= ... (reply tuple)  zone-reply=  packets= bytes=
    [ASSURED|OFFLOAD|HW_OFFLOAD]  mark= secmark= secctx= zone= delta-time= [start=] [stop=]
    helper= use= id= labels=  ([USERSPACE] portid= progname= on -E lines)

The first src= group is the original tuple, the second the reply tuple; packets=/bytes= and
zone-*= belong to the group they follow. ``id=`` right after ``code=`` is the ICMP id, anywhere
else it is the conntrack id (-o id).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any

from .conntrack_common import (
    ICMP_PROTOS,
    L3_NUMBERS,
    L4_NUMBERS,
    PORT_PROTOS,
    U16,
    U32,
    BadRecordError,
    epoch_seconds,
    is_number,
    l3_of,
    parse_address,
    parse_int,
    proto_label,
)

TOKEN = re.compile(r"\[[^\[\]]*\]|\S+")
EVENT_TS = re.compile(r"\[(\d+)\.(\d*)\s*\]")
EVENT_TAGS = {"[NEW]": "NEW", "[UPDATE]": "UPDATE", "[DESTROY]": "DESTROY"}
_FLAG = re.compile(r"\[([A-Z][A-Z_]*)\]")
_STAMP = re.compile(r"\[(start|stop)=([^\]]*)\]")
_STATE = re.compile(r"[A-Z][A-Z0-9_]*")
_HEX = re.compile(r"0x[0-9a-fA-F]{1,8}")
_GRE_PROTOINFO = re.compile(r"(?:timeout|stream_timeout)=[0-9]+,?")
# /proc prints IPv6 with %pI6: eight 4-digit groups; inet_ntop never keeps a leading zero.
_EXPANDED_V6 = re.compile(r"(?:[0-9a-f]{4}:){7}[0-9a-f]{4}")

_TUPLE_KEYS = {"src", "dst", "sport", "dport", "type", "code", "srckey", "dstkey"}
_COUNTER_KEYS = {"packets", "bytes"}
_META_INT = {
    "mark": ("mark", U32),
    "secmark": ("secmark", U32),
    "zone": ("zone", U16),
    "delta-time": ("delta_time_s", 2**63 - 1),
    "use": ("use", 2**31 - 1),
    "portid": ("userspace_portid", U32),
}
_META_TEXT = {"secctx": "secctx", "helper": "helper", "labels": "labels"}


def parse_record(text: str) -> tuple[dict[str, Any], bool]:
    """Parse one record's text; returns the row and whether it carries /proc-only traits."""
    tokens = TOKEN.findall(text)
    row: dict[str, Any] = {"flags": []}
    pos = _header(tokens, row)
    body = _Body(row)
    pos = body.pre_tuple(tokens, pos)
    body.run(tokens, pos)
    body.check()
    return row, body.proc_hint


def _header(tokens: list[str], row: dict[str, Any]) -> int:
    pos = 0
    stamp = EVENT_TS.fullmatch(tokens[0]) if tokens else None
    if stamp is not None:
        # "[%-.8ld.%-.6ld]" zero-pads the microseconds; old "[%-8ld.%-6ld]" pads with spaces
        # on the right, so the digits are a count of microseconds, not a decimal fraction.
        usec = parse_int(stamp[2] or "0", "event timestamp microseconds", 0, 999_999)
        row["event_ts"] = epoch_seconds(stamp[1], usec, "event timestamp")
        pos += 1
    if pos < len(tokens) and tokens[pos] in EVENT_TAGS:
        row["event"] = EVENT_TAGS[tokens[pos]]
        pos += 1
    rest = tokens[pos : pos + 4]
    if (
        len(rest) == 4
        and (rest[0] in L3_NUMBERS or rest[0] == "unknown")
        and is_number(rest[1])
        and (rest[2] in L4_NUMBERS or rest[2] == "unknown")
        and is_number(rest[3])
    ):
        l3_num = parse_int(rest[1], "layer-3 protocol number", 0, 255)
        if rest[0] in L3_NUMBERS and L3_NUMBERS[rest[0]] != l3_num:
            raise BadRecordError(f"layer-3 name {rest[0]!r} does not match number {l3_num}")
        row["l3proto"] = rest[0] if rest[0] != "unknown" else str(l3_num)
        row["_l3_printed"] = True
        pos += 2
    if pos + 1 >= len(tokens) or not (tokens[pos] in L4_NUMBERS or tokens[pos] == "unknown"):
        found = " ".join(tokens[pos : pos + 2]) or "nothing"
        raise BadRecordError(f"expected a protocol name and number, found {found!r}")
    name, num = tokens[pos], parse_int(tokens[pos + 1], "protocol number", 0, 255)
    if name != "unknown" and L4_NUMBERS[name] != num:
        raise BadRecordError(f"protocol name {name!r} does not match number {num}")
    row["proto"], row["proto_num"] = proto_label(num), num
    row["_printed_proto"] = name
    pos += 2
    if pos < len(tokens) and is_number(tokens[pos]):
        row["timeout_s"] = parse_int(tokens[pos], "timeout")
        pos += 1
    if pos < len(tokens) and _STATE.fullmatch(tokens[pos]):
        row["state"] = tokens[pos]
        pos += 1
    return pos


class _Body:
    """The tuples and the fields after them, checked for order and duplicates."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.tuples: list[dict[str, Any]] = []
        self.in_meta = False
        self.extra: list[str] = []
        self.proc_hint = False
        self.previous_key = ""

    def pre_tuple(self, tokens: list[str], pos: int) -> int:
        # /proc GRE protoinfo: "timeout=0, stream_timeout=0" before the first tuple
        while pos < len(tokens) and _GRE_PROTOINFO.fullmatch(tokens[pos]):
            self.extra.append(tokens[pos])
            self.proc_hint = True
            pos += 1
        return pos

    def run(self, tokens: list[str], pos: int) -> None:
        while pos < len(tokens):
            token = tokens[pos]
            pos += 1
            if token.startswith("["):
                self._bracket(token)
                continue
            key, sep, value = token.partition("=")
            if not sep:
                if token in L4_NUMBERS or token in L3_NUMBERS:
                    raise BadRecordError(f"{token!r} inside the record (two records on one line?)")
                cut = " at the end (record cut short?)" if pos == len(tokens) else ""
                raise BadRecordError(f"unexpected token {token[:40]!r}{cut}")
            if key == "progname":
                self.row["userspace_progname"] = " ".join([value, *tokens[pos:]])
                return
            self._key(key, value, token)
            self.previous_key = key

    def _bracket(self, token: str) -> None:
        self.previous_key = ""
        if token in EVENT_TAGS or EVENT_TS.fullmatch(token):
            raise BadRecordError(f"{token} inside the record (two records on one line?)")
        stamp = _STAMP.fullmatch(token)
        if stamp is not None:
            column = f"{stamp[1]}_ts"
            self._once(column, _ctime(stamp[2], stamp[1]))
            return
        flag = _FLAG.fullmatch(token)
        if flag is None:
            raise BadRecordError(f"unexpected token {token!r}")
        if flag[1] == "USERSPACE":
            return
        self.row["flags"].append(flag[1])

    def _key(self, key: str, value: str, token: str) -> None:
        if key == "src":
            if self.in_meta:
                raise BadRecordError("src= after the fields that follow the tuples")
            if len(self.tuples) == 2:
                raise BadRecordError("a third src= group (two records on one line?)")
            self.tuples.append({})
        if key in _TUPLE_KEYS or key in _COUNTER_KEYS or (key == "id" and self._icmp_id()):
            self._tuple_key(key, value)
        elif key in ("zone-orig", "zone-reply"):
            prefix = "orig" if key == "zone-orig" else "reply"
            self._once(f"{prefix}_zone", parse_int(value, key, 0, U16))
        elif key in _META_INT:
            self.in_meta = True
            column, high = _META_INT[key]
            number = parse_int(value, f"{key}=", 0, high)
            self.proc_hint |= key == "zone" and number == 0
            self._once(column, number)
        elif key in _META_TEXT:
            self.in_meta = True
            self._once(_META_TEXT[key], value)
        elif key == "id":
            self.in_meta = True
            self._once("ct_id", parse_int(value, "id=", 0, U32))
        else:
            self.extra.append(token)

    def _icmp_id(self) -> bool:
        return not self.in_meta and self.previous_key == "code"

    def _tuple_key(self, key: str, value: str) -> None:
        if not self.tuples:
            raise BadRecordError(f"{key}= before the first src=")
        if self.in_meta:
            raise BadRecordError(f"{key}= after the fields that follow the tuples")
        current = self.tuples[-1]
        name = "orig" if len(self.tuples) == 1 else "reply"
        what = f"{name} {key}="
        if key in current:
            raise BadRecordError(f"{name} tuple has {key}= twice")
        if key in ("src", "dst"):
            self.proc_hint |= _EXPANDED_V6.fullmatch(value) is not None
            current[key] = parse_address(value, what)
        elif key in ("sport", "dport", "id"):
            current[key] = parse_int(value, what, 0, U16)
        elif key in ("type", "code"):
            current[key] = parse_int(value, what, 0, 255)
        elif key in ("srckey", "dstkey"):
            if not _HEX.fullmatch(value):
                raise BadRecordError(f"{what} {value!r} is not a hex key")
            current[key] = value
        else:
            current[key] = parse_int(value, what)

    def _once(self, column: str, value: Any) -> None:
        if self.row.get(column) is not None:
            raise BadRecordError(f"{column} printed twice")
        self.row[column] = value

    def check(self) -> None:
        row = self.row
        if len(self.tuples) < 2:
            raise BadRecordError("no reply tuple (record cut short?)")
        printed = row.pop("_printed_proto")
        for prefix, values in zip(("orig", "reply"), self.tuples, strict=True):
            _require(values, prefix, ("src", "dst"))
            if printed in PORT_PROTOS:
                _require(values, prefix, ("sport", "dport"))
            elif printed in ICMP_PROTOS:
                _require(values, prefix, ("type", "code", "id"))
            elif printed == "gre":
                _require(values, prefix, ("srckey", "dstkey"))
            for key, column in _COLUMNS.items():
                row[f"{prefix}_{column}"] = values.get(key)
            if "srckey" in values:
                row[f"{prefix}_gre_key"] = f"{values['srckey']}/{values['dstkey']}"
        if row.get("event") is None and row.get("use") is None:
            raise BadRecordError("no use= field at the end (record cut short?)")
        row["l3proto"] = row.get("l3proto") or l3_of(row["orig_src"])
        row["extra"] = " ".join(self.extra) or None


_COLUMNS = {
    "src": "src",
    "dst": "dst",
    "sport": "sport",
    "dport": "dport",
    "type": "icmp_type",
    "code": "icmp_code",
    "id": "icmp_id",
    "packets": "packets",
    "bytes": "bytes",
}


def _require(values: dict[str, Any], prefix: str, keys: tuple[str, ...]) -> None:
    missing = [f"{k}=" for k in keys if k not in values]
    if missing:
        raise BadRecordError(f"{prefix} tuple has no {' '.join(missing)} (record cut short?)")


def _ctime(text: str, what: str) -> datetime:
    """ctime() text ("Tue Apr  9 13:33:24 2024"): the capture host's local time."""
    stamp = _strptime_ctime(" ".join(text.split()))
    if stamp is None:
        raise BadRecordError(f"[{what}={text[:40]}] is not a ctime() date")
    return stamp


@functools.lru_cache(maxsize=4096)
def _strptime_ctime(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    except ValueError:
        return None

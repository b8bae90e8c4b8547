"""Zeek's ASCII log format (TSV with `#` header lines) for rows shaped like `flows`: conn.log.

The fields, their order and types are those of Zeek's conn.log (base/protocols/conn/main.zeek),
then `community_id` as Zeek's policy/protocols/conn/community-id-logging adds it. Values follow
Zeek's ASCII writer: epoch `ts` with 6 decimals, T/F, `-` for unset, `(empty)` for an empty
string or set; a separator, a backslash or a non-printable character inside a value is written
as `\\xHH`, which Zeek's own reader (and zeek-cut) turns back into the character.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

SEPARATOR = "\t"
SET_SEPARATOR = ","
EMPTY_FIELD = "(empty)"
UNSET_FIELD = "-"
OPEN_CLOSE_FORMAT = "%Y-%m-%d-%H-%M-%S"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Field:
    name: str  # Zeek's field name
    type: str  # Zeek's type name, as on the #types line
    column: str  # the flows column it comes from


CONN_FIELDS: tuple[Field, ...] = (
    Field("ts", "time", "ts"),
    Field("uid", "string", "uid"),
    Field("id.orig_h", "addr", "orig_h"),
    Field("id.orig_p", "port", "orig_p"),
    Field("id.resp_h", "addr", "resp_h"),
    Field("id.resp_p", "port", "resp_p"),
    Field("proto", "enum", "proto"),
    Field("service", "string", "service"),
    Field("duration", "interval", "duration"),
    Field("orig_bytes", "count", "orig_bytes"),
    Field("resp_bytes", "count", "resp_bytes"),
    Field("conn_state", "string", "conn_state"),
    Field("local_orig", "bool", "local_orig"),
    Field("local_resp", "bool", "local_resp"),
    Field("missed_bytes", "count", "missed_bytes"),
    Field("history", "string", "history"),
    Field("orig_pkts", "count", "orig_pkts"),
    Field("orig_ip_bytes", "count", "orig_ip_bytes"),
    Field("resp_pkts", "count", "resp_pkts"),
    Field("resp_ip_bytes", "count", "resp_ip_bytes"),
    Field("tunnel_parents", "set[string]", "tunnel_parents"),
    Field("ip_proto", "count", "ip_proto"),
    Field("community_id", "string", "community_id"),
)


def escape(text: str, extra: str = "") -> str:
    """Zeek's escaping: the separator, `extra` characters, a backslash and non-printable
    characters become \\xHH (UTF-8 bytes of other characters are kept)."""
    special = SEPARATOR + "\\" + extra
    out = []
    for char in text:
        if char in special or ord(char) < 32 or ord(char) == 127:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def _string(value: Any) -> str:
    text = str(value)
    if text == "":
        return EMPTY_FIELD
    if text in (UNSET_FIELD, EMPTY_FIELD):  # a value that reads like a marker is escaped
        return "".join(f"\\x{ord(c):02x}" for c in text)
    return escape(text)


def _time(value: datetime) -> str:
    micros = (value - _EPOCH) // timedelta(microseconds=1)
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{seconds}.{fraction:06d}"


def _set(value: Any) -> str:
    items = list(value)
    if not items:
        return EMPTY_FIELD
    return SET_SEPARATOR.join(escape(str(item), SET_SEPARATOR) for item in items)


_FORMATTERS: dict[str, Callable[[Any], str]] = {
    "time": _time,
    "interval": lambda v: f"{float(v):.6f}",
    "count": lambda v: str(int(v)),
    "port": lambda v: str(int(v)),
    "bool": lambda v: "T" if v else "F",
    "set[string]": _set,
}


def format_value(value: Any, zeek_type: str) -> str:
    if value is None:
        return UNSET_FIELD
    return _FORMATTERS.get(zeek_type, _string)(value)


def missing_columns(columns: list[str]) -> list[str]:
    return [f.column for f in CONN_FIELDS if f.column not in columns]


def write_conn_log(
    out: TextIO,
    columns: list[str],
    batches: Iterable[list[tuple[Any, ...]]],
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Write rows with the columns of `flows` as a Zeek conn.log; returns the number of rows."""
    index = [columns.index(f.column) for f in CONN_FIELDS]
    out.write("#separator \\x09\n")
    out.write(f"#set_separator{SEPARATOR}{SET_SEPARATOR}\n")
    out.write(f"#empty_field{SEPARATOR}{EMPTY_FIELD}\n")
    out.write(f"#unset_field{SEPARATOR}{UNSET_FIELD}\n")
    out.write(f"#path{SEPARATOR}conn\n")
    out.write(f"#open{SEPARATOR}{now().strftime(OPEN_CLOSE_FORMAT)}\n")
    out.write(SEPARATOR.join(["#fields", *(f.name for f in CONN_FIELDS)]) + "\n")
    out.write(SEPARATOR.join(["#types", *(f.type for f in CONN_FIELDS)]) + "\n")
    count = 0
    for batch in batches:
        for row in batch:
            cells = (format_value(row[i], f.type) for i, f in zip(index, CONN_FIELDS, strict=True))
            out.write(SEPARATOR.join(cells) + "\n")
        count += len(batch)
    out.write(f"#close{SEPARATOR}{now().strftime(OPEN_CLOSE_FORMAT)}\n")
    return count

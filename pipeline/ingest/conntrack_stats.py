"""conntrack -S per-cpu counters and /proc/net/stat/nf_conntrack, one row per cpu and counter.

conntrack -S (src/conntrack.c nfct_stats_cb) prints ``cpu=%-4u\\t`` and then ``name=%u `` for every
counter the kernel sent (newer kernels dropped searched/new/ignore/delete...; older tools read
/proc and print ``entries=`` too). /proc/net/stat/nf_conntrack (ct_cpu_seq_show) prints a header
of names and one row of %08x hex values per possible cpu.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .conntrack_common import BadRecordError, parse_int

_PAIR = re.compile(r"([a-z][a-z0-9_]*)=([0-9]+)")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_HEX8 = re.compile(r"[0-9a-f]{8}")


def is_stats_line(text: str) -> bool:
    return re.match(r"cpu=[0-9]+(\s|$)", text) is not None


def parse_stats_line(text: str) -> list[dict[str, Any]]:
    """One ``cpu=N name=value ...`` line -> rows; BadRecordError when a token is damaged."""
    tokens = text.split()
    cpu = parse_int(tokens[0].removeprefix("cpu="), "cpu=", 0, 2**31 - 1)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for token in tokens[1:]:
        pair = _PAIR.fullmatch(token)
        if pair is None:
            raise BadRecordError(f"counter {token!r} is not name=number")
        if pair[1] in seen:
            raise BadRecordError(f"counter {pair[1]} printed twice")
        seen.add(pair[1])
        value = parse_int(pair[2], pair[1], 0, 2**63 - 1)
        rows.append({"format": "stats", "cpu": cpu, "counter": pair[1], "value": value})
    if not rows:
        raise BadRecordError("cpu= line without counters (cut short?)")
    return rows


@dataclass
class ProcStats:
    """/proc/net/stat/nf_conntrack: a header of counter names, then one hex row per cpu."""

    names: list[str] = field(default_factory=list)
    next_cpu: int = 0

    def header(self, text: str) -> bool:
        tokens = text.split()
        if len(tokens) < 5 or tokens[0] != "entries" or "found" not in tokens:
            return False
        if not all(_NAME.fullmatch(t) for t in tokens):
            return False
        self.names, self.next_cpu = tokens, 0
        return True

    def is_row(self, text: str) -> bool:
        tokens = text.split()
        return bool(self.names) and bool(tokens) and all(_HEX8.fullmatch(t) for t in tokens)

    def parse_row(self, text: str) -> list[dict[str, Any]]:
        tokens = text.split()
        cpu = self.next_cpu
        self.next_cpu += 1
        if len(tokens) != len(self.names):
            raise BadRecordError(
                f"row has {len(tokens)} values but the header names {len(self.names)} counters"
            )
        return [
            {"format": "proc", "cpu": cpu, "counter": name, "value": int(value, 16)}
            for name, value in zip(self.names, tokens, strict=True)
        ]

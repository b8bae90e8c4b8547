"""Kernel settings: ``sysctl -a`` (also ``sysctl net.netfilter``) and ``grep . /proc/sys/...``.

Records (read = parsed + rejected): every non-blank line.
- ``sysctl -a`` prints ``key = value`` (procps: ``%s = %s``; a value of several fields, such as
  ``net.ipv4.ip_local_port_range``, keeps its tab between them, stored as one space).
- ``grep . /proc/sys/net/netfilter/*`` (or ``grep -r``) prints ``/proc/sys/PATH:value``; the key
  is the path below /proc/sys with ``/`` turned into ``.`` (what sysctl prints).
- ``sysctl: permission denied on key ...`` and ``sysctl: reading key ...`` are sysctl's own
  messages about a key it could not read: rejected, with the message kept as the raw text.
Anything else on a line (a shell prompt, prose) is a rejected record.
"""

from __future__ import annotations

import re
from typing import Any

from ..schemas import RAW_HOST_SYSCTLS
from .records import Detection, ParsedChunk, RecordError, iter_lines

KINDS: tuple[str, ...] = ("sysctl",)

_TOP = r"(?:net|kernel|vm|fs|dev|abi|debug|user|crypto|sunrpc)"
_SYSCTL = re.compile(rf"^({_TOP}(?:\.[A-Za-z0-9_\-/:@+]+)+)\s*=\s?(.*)$")
_PROC = re.compile(rf"^/proc/sys/({_TOP}(?:/[A-Za-z0-9_\-.:@+]+)+):(.*)$")
_INT = re.compile(r"-?[0-9]+")


def detect(text: str) -> Detection | None:
    """Score: lines shaped like ``net.x.y = v`` or ``/proc/sys/net/x/y:v``."""
    score = sum(
        1 for line in iter_lines(text) if _SYSCTL.match(line.text) or _PROC.match(line.text)
    )
    return Detection("sysctl", score) if score else None


def parse(text: str, kind: str) -> ParsedChunk:
    rows: list[dict[str, Any]] = []
    chunk = ParsedChunk()
    for line in iter_lines(text):
        if not line.text:
            continue
        chunk.records_read += 1
        row = _row(line.text)
        if row is None:
            reason = (
                "sysctl's own message (a key it could not read), not a setting"
                if line.text.startswith("sysctl:")
                else "not a `key = value` or `/proc/sys/PATH:value` line"
            )
            chunk.errors.append(RecordError(reason, line.raw, line.no))
            continue
        rows.append({**row, "source_line": line.no})
        chunk.records_parsed += 1
    chunk.frames[RAW_HOST_SYSCTLS.name] = RAW_HOST_SYSCTLS.frame(rows)
    return chunk


def _row(text: str) -> dict[str, Any] | None:
    match = _SYSCTL.match(text)
    if match:
        fmt, key, value = "sysctl", match[1], match[2]
    else:
        match = _PROC.match(text)
        if match is None:
            return None
        fmt, key, value = "proc", match[1].replace("/", "."), match[2]
    value = " ".join(value.split())
    number = int(value) if _INT.fullmatch(value) and abs(int(value)) < 2**63 else None
    return {"format": fmt, "key": key, "value": value, "value_int": number}

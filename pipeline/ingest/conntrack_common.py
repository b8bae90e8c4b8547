"""Shared pieces of the conntrack ingestor: protocol tables, value checks, the summary line.

Print formats were read from libnetfilter_conntrack ``src/conntrack/snprintf_default.c`` and
``snprintf_xml.c``, conntrack-tools ``src/conntrack.c`` and the kernel's
``net/netfilter/nf_conntrack_standalone.c`` (``ct_seq_show``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .records import RecordError

# __proto2str() / l4proto_name(): every other number prints as "unknown".
L4_NUMBERS: dict[str, int] = {
    "icmp": 1,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "gre": 47,
    "icmpv6": 58,
    "sctp": 132,
    "udplite": 136,
}
L4_NAMES: dict[int, str] = {num: name for name, num in L4_NUMBERS.items()}
L3_NUMBERS: dict[str, int] = {"ipv4": 2, "ipv6": 10}
PORT_PROTOS = frozenset({"tcp", "udp", "udplite", "sctp", "dccp"})
ICMP_PROTOS = frozenset({"icmp", "icmpv6"})

U16 = 0xFFFF
U32 = 0xFFFFFFFF
I64 = 2**63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EPOCH_S = 253_402_300_799  # 9999-12-31T23:59:59Z

# stderr of every conntrack command: "conntrack v1.4.8 (conntrack-tools): <message>"
SUMMARY = re.compile(r"conntrack\s+v(?P<version>\S+)\s+\(conntrack-tools\):\s*(?P<message>.*)$")
_COUNT = re.compile(
    r"(?P<count>[0-9]{1,18})\s+(?P<what>flow\s+entries|flow\s+events|expectations|"
    r"expectation\s+events)\s+have\s+been\s+(?P<verb>shown|created|updated|deleted|added)\.?$"
)


class BadRecordError(ValueError):
    """Why one record cannot be used; the per-record loop turns it into a RecordError."""


def proto_label(num: int) -> str:
    """Protocol name for a number: the names conntrack prints, else the number as text."""
    return L4_NAMES.get(num, str(num))


_DIGITS = re.compile(r"[0-9]{1,20}")


def is_number(text: str) -> bool:
    return _DIGITS.fullmatch(text) is not None


def parse_int(value: str, what: str, low: int = 0, high: int = I64) -> int:
    if not is_number(value):
        raise BadRecordError(f"{what} {value[:40]!r} is not a number")
    number = int(value)
    if not low <= number <= high:
        raise BadRecordError(f"{what} {number} is out of range {low}..{high}")
    return number


def parse_address(value: str, what: str) -> str:
    """Normalised address text (IPv6 compressed, as /proc prints it fully expanded)."""
    normalised = _normalise_address(value)
    if normalised is None:
        raise BadRecordError(f"{what} {value[:60]!r} is not an IP address")
    return normalised


@functools.lru_cache(maxsize=65536)
def _normalise_address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def epoch_ns(value: str, what: str) -> datetime:
    """Nanoseconds since the epoch (XML <start>/<stop>) as a UTC datetime."""
    return EPOCH + timedelta(microseconds=parse_int(value, what, 0, MAX_EPOCH_S * 10**9) // 1000)


def epoch_seconds(seconds: str, usec: int, what: str) -> datetime:
    return EPOCH + timedelta(seconds=parse_int(seconds, what, 0, MAX_EPOCH_S), microseconds=usec)


def l3_of(address: str | None) -> str | None:
    if address is None:
        return None
    return "ipv6" if ":" in address else "ipv4"


@dataclass
class SummaryCheck:
    """Cross-check "N flow entries have been shown." against the entry records around it.

    conntrack prints the line on stderr, so it lands after the records (2>&1 at the end) or,
    when stderr is unbuffered and stdout is piped, before them. The first summary's position in
    the file decides which records each summary counts.
    """

    entries: list[int] = field(default_factory=list)  # first line of each entry record
    summaries: list[tuple[int, int, str, str]] = field(default_factory=list)
    warnings: list[RecordError] = field(default_factory=list)

    def entry(self, line: int) -> None:
        self.entries.append(line)

    def line(self, text: str, raw: str, line: int) -> bool:
        """Take a summary/message line; False when `text` is not one."""
        match = SUMMARY.search(text)
        if match is None:
            return False
        message = " ".join(match["message"].split())
        count = _COUNT.match(message)
        if count is None:
            self.warnings.append(
                RecordError(f"conntrack printed a message: {message}", raw, line, None, False)
            )
        else:
            what = " ".join(count["what"].split())
            self.summaries.append((line, int(count["count"]), what, raw))
        return True

    def finish(self) -> list[RecordError]:
        if not self.summaries:
            return self.warnings
        first_entry = self.entries[0] if self.entries else None
        summary_first = first_entry is None or self.summaries[0][0] < first_entry
        bounds = [s[0] for s in self.summaries]
        for index, (line, count, what, raw) in enumerate(self.summaries):
            if summary_first:
                low, high = line, bounds[index + 1] if index + 1 < len(bounds) else None
            else:
                low, high = (bounds[index - 1] if index else 0), line
            seen = sum(1 for e in self.entries if e > low and (high is None or e < high))
            if seen != count:
                where = "after it" if summary_first else "before it"
                self.warnings.append(
                    RecordError(
                        f"summary line says {count} {what} but {seen} records were read "
                        f"{where} (output filtered, cut or pasted in part?)",
                        raw,
                        line,
                        None,
                        False,
                    )
                )
        return sorted(self.warnings, key=lambda e: e.line or 0)

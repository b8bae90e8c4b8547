"""Field decoders shared by the ipvsadm parsers: addresses, ports, counters, hex from /proc.

Every decoder raises FieldError (a ValueError) with a sentence saying what was wrong; the parsers
catch it in their per-record loop and turn it into a RecordError.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# ipvsadm without -n prints getservbyport() names; /etc/services differs between hosts, so only
# this small fixed table is used to recover the number (unknown names keep vport null).
WELL_KNOWN_PORTS: dict[str, int] = {
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "domain": 53,
    "tftp": 69,
    "http": 80,
    "www": 80,
    "kerberos": 88,
    "pop3": 110,
    "sunrpc": 111,
    "ntp": 123,
    "imap": 143,
    "imap2": 143,
    "snmp": 161,
    "bgp": 179,
    "ldap": 389,
    "https": 443,
    "smtps": 465,
    "syslog": 514,
    "submission": 587,
    "ldaps": 636,
    "rsync": 873,
    "imaps": 993,
    "pop3s": 995,
    "ms-sql-s": 1433,
    "mysql": 3306,
    "sip": 5060,
    "postgresql": 5432,
    "http-alt": 8080,
}

_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")
_IPV4ISH = re.compile(r"^[0-9.]+$")  # digits and dots: must be a valid IPv4 address
_PORT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")
_COUNTER = re.compile(r"^([0-9]+)([KMGT]?)$")
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_HEX = re.compile(r"^[0-9A-Fa-f]+$")
_EXPIRE = re.compile(r"^([0-9]+):([0-5][0-9])$")
INT64_MAX = 2**63 - 1


def is_decimal(text: str) -> bool:
    """ASCII digits only (str.isdigit() also accepts e.g. superscripts, which int() rejects)."""
    return text.isascii() and text.isdigit()


class FieldError(ValueError):
    """A field of a record could not be decoded; the message is the rejection reason."""


@dataclass(frozen=True)
class Endpoint:
    """host:port as printed by ipvsadm, decoded."""

    host: str  # normalised address, or the host name as printed
    port: int | None
    port_name: str | None  # the port as printed when it was a service name
    family: str | None  # inet|inet6, None for a host name


def normalise_ip(text: str, what: str = "address") -> tuple[str, str]:
    """Return (normalised address, family) or raise FieldError."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise FieldError(f"{what} '{text}' is not an IP address") from None
    return str(addr), "inet" if addr.version == 4 else "inet6"


def parse_port(text: str, what: str = "port") -> tuple[int | None, str | None]:
    """Decimal port, or a service name (no -n) -> (number from WELL_KNOWN_PORTS or None, name)."""
    if is_decimal(text):
        port = int(text)
        if port > 65535:
            raise FieldError(f"{what} {text} is out of range (0-65535)")
        return port, None
    if _PORT_NAME.match(text):
        return WELL_KNOWN_PORTS.get(text), text
    raise FieldError(f"{what} '{text}' is neither a port number nor a service name")


def parse_endpoint(text: str, what: str) -> Endpoint:
    """'10.0.0.1:80', '[2001:db8::1]:80', 'web1:http' (names kept as printed when not -n)."""
    family: str | None
    if text.startswith("["):
        close = text.find("]:")
        if close < 0:
            raise FieldError(f"{what} '{text}' is not [IPv6]:port (missing ']:')")
        host_text, port_text = text[1:close], text[close + 2 :]
        host, family = normalise_ip(host_text, what)
        if family != "inet6":
            raise FieldError(f"{what} '{text}' has an IPv4 address inside brackets")
    else:
        host_text, sep, port_text = text.rpartition(":")
        if not sep or not host_text:
            raise FieldError(f"{what} '{text}' is not address:port")
        if ":" in host_text:
            raise FieldError(f"{what} '{text}' looks like an IPv6 address without brackets")
        if _IPV4ISH.match(host_text):
            host, family = normalise_ip(host_text, what)
        elif _HOSTNAME.match(host_text):
            host, family = host_text, None
        else:
            raise FieldError(f"{what} '{host_text}' is neither an IP address nor a host name")
    if not port_text:
        raise FieldError(f"{what} '{text}' has no port after ':'")
    port, port_name = parse_port(port_text, f"{what} port")
    return Endpoint(host, port, port_name, family)


def parse_counter(text: str) -> tuple[int, bool]:
    """ipvsadm print_largenum(): '125426K' -> (125426000, False); '1234' -> (1234, True)."""
    match = _COUNTER.match(text)
    if match is None:
        raise FieldError(f"'{text}' is not a counter (digits with an optional K/M/G/T suffix)")
    value = int(match.group(1)) * _SUFFIX[match.group(2)]
    if value > INT64_MAX:
        raise FieldError(f"counter '{text}' does not fit in 64 bits")
    return value, match.group(2) == ""


def parse_int(text: str, what: str, *, signed: bool = False) -> int:
    """A decimal integer column (weight may be negative in a damaged kernel, never in ipvsadm)."""
    body = text[1:] if signed and text.startswith("-") else text
    if not is_decimal(body):
        raise FieldError(f"{what} '{text}' is not a number")
    value = int(text)
    if abs(value) > INT64_MAX:
        raise FieldError(f"{what} '{text}' does not fit in 64 bits")
    return value


def parse_hex(text: str, what: str, *, width: int | None = None) -> int:
    """A hex field of /proc/net/ip_vs*; `width` requires exactly that many digits."""
    if not _HEX.match(text) or (width is not None and len(text) != width):
        digits = f"{width} " if width else ""
        raise FieldError(f"{what} '{text}' is not {digits}hex digits")
    value = int(text, 16)
    if value > INT64_MAX:
        raise FieldError(f"{what} '{text}' does not fit in 64 bits")
    return value


def parse_proc_addr(text: str, what: str) -> tuple[str, str]:
    """/proc address: 8 hex digits (IPv4, host order) or %pI6 IPv6 -> (address, family)."""
    if ":" in text:
        return normalise_ip(text.strip("[]"), what)
    value = parse_hex(text, what, width=8)
    return str(ipaddress.IPv4Address(value)), "inet"


def parse_proc_endpoint(text: str, what: str) -> tuple[str, str, int]:
    """'0A0A0102:0050' or '[2001:0db8:...:0001]:0050' -> (address, family, port)."""
    if text.startswith("["):
        close = text.find("]:")
        if close < 0:
            raise FieldError(f"{what} '{text}' is not [IPv6]:PORT")
        host, port_text = text[1:close], text[close + 2 :]
    else:
        host, _, port_text = text.partition(":")
    addr, family = parse_proc_addr(host, what)
    return addr, family, parse_hex(port_text, f"{what} port", width=4)


def proc_netmask(value: int) -> str | None:
    """/proc/net/ip_vs 'persistent T MASK': IPv4 mask as dotted quad, IPv6 as a prefix length.

    The full mask (/32 or /128) is returned as None, as ipvsadm -L omits it.
    """
    if value <= 128:
        return None if value == 128 else str(value)
    if value == 0xFFFFFFFF:
        return None
    return str(ipaddress.IPv4Address(value & 0xFFFFFFFF))


def parse_expire(text: str) -> int:
    """ipvsadm -Lc expire column 'MM:SS' (minutes may exceed 99) -> seconds."""
    match = _EXPIRE.match(text)
    if match is None:
        raise FieldError(f"expire '{text}' is not MM:SS")
    return int(match.group(1)) * 60 + int(match.group(2))


def squeeze(text: str) -> str:
    """Collapse runs of blanks (copy-paste damage and column padding) into one space."""
    return " ".join(text.split())

"""HTTP and DNS messages in the packets of a batch -> raw_app_messages.

The candidates are picked with array operations on the decoded columns: TCP segments whose
payload starts with an HTTP method or ``HTTP/``, UDP datagrams from or to port 53/5353, and UDP
datagrams starting with ``Host`` (the lab's whoami UDP responder). Only those are parsed in
Python: HTTP with dpkt.http, falling back to a line-based parse when the message is cut (a
message split over several segments is parsed from its first segment: the request line and
headers usually fit); DNS with dpkt.dns. Inner (VXLAN/Geneve) packets are skipped. Nothing here
raises on bad bytes: an unparsable candidate simply yields no row.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import dpkt
import numpy as np
import polars as pl

from ..schemas import RAW_APP_MESSAGES
from . import pcap_columns
from .pcap_batch import PAD_BYTES, RecordBatch

Row = dict[str, Any]

BODY_LINES = 10
DNS_PORTS = (53, 5353)
HTTP_PREFIXES = (
    b"GET ",
    b"POST",
    b"PUT ",
    b"HEAD",
    b"DELE",
    b"OPTI",
    b"PATC",
    b"CONN",
    b"TRAC",
    b"HTTP",
)
WHOAMI_PREFIX = b"Host"
_PREFIX_WORDS = np.array([int.from_bytes(p, "big") for p in HTTP_PREFIXES], np.uint32)
_WHOAMI_WORD = int.from_bytes(WHOAMI_PREFIX, "big")
LOOPBACK = frozenset({"127.0.0.1", "::1"})

DNS_TYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    41: "OPT",
    64: "SVCB",
    65: "HTTPS",
    255: "ANY",
}
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_PACKET_COLUMNS = ("frame_no", "ts", "src_ip", "dst_ip", "proto", "src_port", "dst_port")
_SCHEMA = RAW_APP_MESSAGES.parser_schema()
_MESSAGE_SCHEMA = {k: v for k, v in _SCHEMA.items() if k not in _PACKET_COLUMNS}


def candidates(batch: RecordBatch, cols: pcap_columns.Cols) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `cols` that may hold an application message, and where each payload starts in
    the batch buffer."""
    n = cols["packet"].shape[0]
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    proto = pcap_columns.field(cols, "proto_num")
    size = pcap_columns.field(cols, "payload_len")
    off = pcap_columns.field(cols, "payload_off")
    packet = cols["packet"]
    caplen = batch.caplen[packet].astype(np.int64)
    base = (proto == 6) | (proto == 17)
    base &= (cols["depth"] == 0) & (size > 0) & (off >= 0) & (off < caplen)
    rows = np.flatnonzero(base)
    start = batch.data_off[packet[rows]].astype(np.int64) + off[rows]
    buf = batch.buf
    limit = buf.shape[0] - PAD_BYTES
    start = np.minimum(start, limit)  # the pad keeps the 4-byte look-ahead inside the buffer
    word = (
        (buf[start].astype(np.uint32) << 24)
        | (buf[start + 1].astype(np.uint32) << 16)
        | (buf[start + 2].astype(np.uint32) << 8)
        | buf[start + 3]
    )
    sport = pcap_columns.field(cols, "src_port")[rows]
    dport = pcap_columns.field(cols, "dst_port")[rows]
    tcp = proto[rows] == 6
    dns = np.logical_or.reduce([port == p for port in (sport, dport) for p in DNS_PORTS])
    keep = np.where(tcp, np.isin(word, _PREFIX_WORDS), dns | (word == _WHOAMI_WORD))
    return rows[keep], start[keep]


def app_frame(batch: RecordBatch, cols: pcap_columns.Cols, packets: pl.DataFrame) -> pl.DataFrame:
    """raw_app_messages rows for a batch; `packets` is the raw_packets frame built from `cols`
    (same row order).

    The packet columns of a message are gathered from `packets` (no Python objects); only the
    payloads are parsed in Python, and their fields are built into columns.
    """
    rows, start = candidates(batch, cols)
    if rows.shape[0] == 0:
        return RAW_APP_MESSAGES.frame([])
    packet = cols["packet"][rows]
    caplen = batch.caplen[packet].astype(np.int64)
    off = pcap_columns.field(cols, "payload_off")[rows]
    size = np.minimum(pcap_columns.field(cols, "payload_len")[rows], caplen - off)
    heads = packets.select(_PACKET_COLUMNS)[rows]
    found, messages = _parse_payloads(batch, start, size, heads)
    if not messages:
        return RAW_APP_MESSAGES.frame([])
    body = pl.DataFrame(messages, schema=_MESSAGE_SCHEMA)  # as TableSchema.frame converts
    # the packet's own timestamp, nanoseconds included
    return heads[found].hstack(body).select(list(_SCHEMA))


def _parse_payloads(
    batch: RecordBatch, start: np.ndarray, size: np.ndarray, heads: pl.DataFrame
) -> tuple[list[int], list[Row]]:
    """The message of each candidate that holds one: its position in `heads`, and its fields."""
    data = batch.buf[: int((start + size).max())].tobytes()
    found: list[int] = []
    messages: list[Row] = []
    fields = zip(
        start.tolist(),
        (start + size).tolist(),
        heads["proto"].to_list(),
        heads["src_port"].to_list(),
        heads["dst_port"].to_list(),
        strict=True,
    )
    for i, (at, end, proto, sport, dport) in enumerate(fields):
        message = parse_payload(data[at:end], proto, sport, dport)
        if message is not None:
            found.append(i)
            messages.append(message)
    return found, messages


def parse_payload(payload: bytes, proto: str, sport: int | None, dport: int | None) -> Row | None:
    """The application message at the start of one payload, or None."""
    if proto == "tcp":
        return parse_http(payload)
    if sport in DNS_PORTS or dport in DNS_PORTS:
        return parse_dns(payload)
    if payload.startswith(b"Hostname:"):
        return {"kind": "udp_whoami", **whoami(payload.decode("latin-1").splitlines())}
    return None


# --- HTTP --------------------------------------------------------------------------------------


def parse_http(payload: bytes) -> Row | None:
    """An HTTP request or response head (and the start of a response body)."""
    try:
        if payload.startswith(b"HTTP/"):
            return _response(dpkt.http.Response(payload))
        return _request(dpkt.http.Request(payload))
    except (dpkt.NeedData, dpkt.UnpackError, ValueError, IndexError):
        return parse_http_lines(payload)


def _request(req: Any) -> Row:
    headers = req.headers
    return {
        "kind": "http_request",
        "http_method": req.method,
        "http_uri": req.uri,
        "http_host": _header(headers.get("host")),
        "http_user_agent": _header(headers.get("user-agent")),
    }


def _response(resp: Any) -> Row:
    body = bytes(resp.body).decode("latin-1").splitlines()
    return {
        "kind": "http_response",
        "http_status": _status(str(resp.status)),
        "http_reason": resp.reason or None,
        **_body(body),
    }


def _header(value: Any) -> str | None:
    """dpkt gives a list for a repeated header: keep the first."""
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def _status(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 3 else None


def parse_http_lines(payload: bytes) -> Row | None:
    """Line-based parse of whatever part of an HTTP message a segment holds; never raises."""
    text = payload.decode("latin-1")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    first = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers.setdefault(name.strip().lower(), value.strip())
    if first[0].startswith("HTTP/"):
        return {
            "kind": "http_response",
            "http_status": _status(first[1]) if len(first) > 1 else None,
            "http_reason": first[2].strip() or None if len(first) > 2 else None,
            **_body(body.splitlines()),
        }
    if len(first) < 2 or not first[0].isascii() or not first[0].isalpha():
        return None
    return {
        "kind": "http_request",
        "http_method": first[0],
        "http_uri": first[1],
        "http_host": headers.get("host"),
        "http_user_agent": headers.get("user-agent"),
    }


def _body(lines: list[str]) -> Row:
    row = whoami(lines)
    row["body_lines"] = "\n".join(lines[:BODY_LINES]) if lines else None
    return row


def whoami(lines: list[str]) -> Row:
    """traefik/whoami identity lines of a body: Hostname, the first non-loopback IP, RemoteAddr."""
    row: Row = {"whoami_hostname": None, "whoami_ip": None, "whoami_remote_addr": None}
    for line in lines:
        name, sep, value = line.partition(":")
        value = value.strip()
        if not sep:
            continue
        if name == "Hostname" and row["whoami_hostname"] is None:
            row["whoami_hostname"] = value
        elif name == "IP" and row["whoami_ip"] is None and value not in LOOPBACK:
            row["whoami_ip"] = value
        elif name == "RemoteAddr" and row["whoami_remote_addr"] is None:
            row["whoami_remote_addr"] = value
    return row


# --- DNS ---------------------------------------------------------------------------------------


def parse_dns(payload: bytes) -> Row | None:
    """A DNS query or response (UDP); a message dpkt cannot unpack keeps its header fields."""
    if len(payload) < 12:
        return None
    ident, flags = struct.unpack_from(">HH", payload)
    row: Row = {
        "kind": "dns_response" if flags & 0x8000 else "dns_query",
        "dns_id": ident,
        "dns_rcode": DNS_RCODES.get(flags & 0xF, str(flags & 0xF)) if flags & 0x8000 else None,
    }
    try:
        msg = dpkt.dns.DNS(payload)
    except (dpkt.NeedData, dpkt.UnpackError, ValueError, IndexError, struct.error):
        return row
    if msg.qd:
        row["dns_qname"] = msg.qd[0].name
        row["dns_qtype"] = dns_type(msg.qd[0].type)
    if flags & 0x8000:
        row["dns_answers"] = [_answer(rr) for rr in msg.an]
    return row


def dns_type(value: int) -> str:
    return DNS_TYPES.get(value, f"TYPE{value}")


def _answer(rr: Any) -> str:
    kind = dns_type(rr.type)
    value: str
    if rr.type == 1 and len(rr.rdata) == 4:
        value = str(ipaddress.IPv4Address(rr.rdata))
    elif rr.type == 28 and len(rr.rdata) == 16:
        value = str(ipaddress.IPv6Address(rr.rdata))
    elif rr.type == 5:
        value = str(getattr(rr, "cname", ""))
    elif rr.type == 2:
        value = str(getattr(rr, "nsname", ""))
    elif rr.type == 12:
        value = str(getattr(rr, "ptrname", ""))
    elif rr.type == 33:
        value = f"{rr.priority} {rr.weight} {rr.port} {rr.srvname}"
    elif rr.type == 15:
        value = f"{rr.preference} {rr.mxname}"
    elif rr.type == 16:
        texts = getattr(rr, "text", [])
        value = " ".join(t.decode("latin-1") if isinstance(t, bytes) else str(t) for t in texts)
    else:
        value = bytes(rr.rdata).hex()
    return f"{rr.name} {kind} {value}"

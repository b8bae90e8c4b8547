"""The `--engine pyshark` reader: Wireshark's dissectors (tshark through pyshark), for cross-checks.

Slow (tshark's PDML parsed packet by packet) but independent of natlens' own decoders: the
raw_packets columns come from tshark's fields as far as it gives them, and raw_app_messages from
Wireshark's http and dns dissectors (TCP reassembly is switched off, so a message is reported
on its first segment as the fast engine does). Only the captured frames are rows: the inner
packets of VXLAN/Geneve tunnels are not (the fast engine's inner rows have no counterpart here).

pyshark drives tshark with asyncio; each capture gets its own event loop, which is closed with
the capture, so this works from the CLI, from a worker thread and under pytest's
filterwarnings=error.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import polars as pl
import pyshark

from ..errors import InputError
from ..schemas import RAW_APP_MESSAGES, RAW_PACKETS
from . import pcap_app, pcap_framing, pcapng
from .pcap_columns import PROTO_NAMES, flags_text
from .records import ParsedChunk, RecordError

Row = dict[str, Any]

PACKETS_PER_CHUNK = 5000
# no reassembly (a message is reported on its first segment) and no retransmission analysis (a
# packet seen twice by `tcpdump -i any` would otherwise not be dissected the second time)
PREFS = {"tcp.desegment_tcp_streams": "FALSE", "tcp.analyze_sequence_numbers": "FALSE"}


def read_capture(path: Path) -> Iterator[ParsedChunk]:
    """ParsedChunks of raw_packets and raw_app_messages rows, decoded by tshark."""
    _check_header(path)
    loop = asyncio.new_event_loop()
    capture = pyshark.FileCapture(
        str(path), keep_packets=False, eventloop=loop, override_prefs=PREFS
    )
    try:
        packets: list[Row] = []
        messages: list[Row] = []
        packets_iter = iter(capture)
        try:
            for pkt in packets_iter:
                row = packet_row(pkt)
                packets.append(row)
                message = app_row(pkt)
                if message is not None:
                    messages.append({**_message_head(row), **message})
                if len(packets) >= PACKETS_PER_CHUNK:
                    yield _chunk(packets, messages, [])
                    packets, messages = [], []
        except pyshark.capture.capture.TSharkCrashException as exc:
            error = RecordError(f"tshark stopped reading the file: {exc}", raw="", offset=None)
            yield _chunk(packets, messages, [error])
            packets, messages = [], []
        finally:
            close = getattr(packets_iter, "close", None)
            if close is not None:
                close()
        if packets or messages:
            yield _chunk(packets, messages, [])
    finally:
        _close(capture, loop)


def _close(capture: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Stop tshark and close the loop; a tshark exit status seen only now is not an error of
    the file (every packet it printed was read)."""
    try:
        capture.close()
    except pyshark.capture.capture.TSharkCrashException:
        pass
    finally:
        # why: when close() stops on tshark's exit status, pyshark still lists the process, and
        # its __del__ would later try to close it on this (by then closed) loop: a coroutine
        # never awaited, reported by the garbage collector wherever it runs next
        running: set[Any] = getattr(capture, "_running_processes", set())
        for process in list(running):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        running.clear()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _check_header(path: Path) -> None:
    """The same whole-file checks as the fast engine (InputError for a non-capture)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(pcap_framing.FILE_HEADER_BYTES)
    except OSError as exc:
        raise InputError(str(path), f"cannot read file: {exc.strerror or exc}") from exc
    if head[:4] == b"\x0a\x0d\x0d\x0a":
        pcapng.check_start(head, str(path))
    else:
        pcap_framing.read_header(head, str(path))


def _chunk(packets: list[Row], messages: list[Row], errors: list[RecordError]) -> ParsedChunk:
    return ParsedChunk(
        frames={
            "raw_packets": RAW_PACKETS.frame(packets),
            "raw_app_messages": RAW_APP_MESSAGES.frame(messages),
        },
        errors=errors,
        records_read=len(packets) + len(errors),
        records_parsed=len(packets),
    )


def _field(layer: Any, name: str) -> str | None:
    value = layer.get_field(name)
    return None if value is None else str(value)


def _all(layer: Any, name: str) -> list[str]:
    value = layer.get_field(name)
    if value is None:
        return []
    return [str(f.show) for f in value.all_fields]


def _int(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        return None


def _addr(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _layer(pkt: Any, name: str) -> Any:
    return pkt[name] if name in pkt else None


def packet_row(pkt: Any) -> Row:
    """raw_packets columns of one frame, from tshark's fields."""
    info = pkt.frame_info
    frame_len, caplen = _int(_field(info, "len")), _int(_field(info, "cap_len"))
    row: Row = {
        "frame_no": _int(_field(info, "number")),
        "ts": _ts(_field(info, "time_epoch")),
        "frame_len": frame_len,
        "caplen": caplen,
        "is_truncated": caplen is not None and frame_len is not None and caplen < frame_len,
        "iface_id": _int(_field(info, "interface_id")),
        "encap_depth": 0,
    }
    _link(pkt, row)
    ip, ip6 = _layer(pkt, "ip"), _layer(pkt, "ipv6")
    header = 0
    if ip is not None:
        row["ip_version"] = 4
        row["src_ip"], row["dst_ip"] = _addr(_field(ip, "src")), _addr(_field(ip, "dst"))
        row["proto_num"] = _int(_field(ip, "proto"))
        row["ip_id"] = _int(_field(ip, "id"))
        row["ttl"] = _int(_field(ip, "ttl"))
        row["ip_len"] = _int(_field(ip, "len"))
        offset = _int(_field(ip, "frag_offset")) or 0
        row["frag_offset"] = offset
        row["is_fragment"] = offset > 0 or _field(ip, "flags_mf") in ("1", "True")
        header = _int(_field(ip, "hdr_len")) or 20
    elif ip6 is not None:
        row["ip_version"] = 6
        row["src_ip"], row["dst_ip"] = _addr(_field(ip6, "src")), _addr(_field(ip6, "dst"))
        row["proto_num"] = _int(_field(ip6, "nxt"))
        row["ttl"] = _int(_field(ip6, "hlim"))
        plen = _int(_field(ip6, "plen"))
        row["ip_len"] = None if plen is None else plen + 40
        row["is_fragment"] = False
        header = 40
    _transport(pkt, row, header)
    proto = row.get("proto_num")
    if proto is not None:
        row["proto"] = PROTO_NAMES.get(proto, str(proto))
    return row


def _ts(text: str | None) -> Any:
    if text is None:
        return None
    try:
        ns = int(Decimal(text) * 1_000_000_000)
    except InvalidOperation:
        return None
    return pl.Series([ns], dtype=pl.Int64).cast(pl.Datetime("ns", "UTC"))[0]


def _link(pkt: Any, row: Row) -> None:
    if "eth" in pkt:
        row["link_type"] = "ethernet"
        row["eth_type"] = _int(_field(pkt.eth, "type"))
    elif "sll" in pkt:
        sll = pkt.sll
        ifindex = _int(_field(sll, "ifindex"))
        row["link_type"] = "sll2" if ifindex is not None else "sll"
        row["eth_type"] = _int(_field(sll, "etype"))
        if ifindex is not None:
            row["ifindex"] = ifindex
            row["iface"] = str(ifindex)
    if "vlan" in pkt:
        row["vlan"] = _int(_field(pkt.vlan, "id"))


def _transport(pkt: Any, row: Row, header: int) -> None:
    tcp, udp = _layer(pkt, "tcp"), _layer(pkt, "udp")
    ip_len = row.get("ip_len")
    if tcp is not None:
        row["src_port"], row["dst_port"] = (
            _int(_field(tcp, "srcport")),
            _int(_field(tcp, "dstport")),
        )
        row["seq"], row["ack"] = _int(_field(tcp, "seq_raw")), _int(_field(tcp, "ack_raw"))
        bits = _int(_field(tcp, "flags"))
        if bits is not None:
            row["tcp_flags_bits"] = bits & 0x0FFF
            row["tcp_flags"] = flags_text(bits & 0xFF)
        row["window"] = _int(_field(tcp, "window_size_value"))
        row["tsval"] = _int(_field(tcp, "options_timestamp_tsval"))
        row["tsecr"] = _int(_field(tcp, "options_timestamp_tsecr"))
        row["payload_len"] = _int(_field(tcp, "len"))
    elif udp is not None:
        row["src_port"], row["dst_port"] = (
            _int(_field(udp, "srcport")),
            _int(_field(udp, "dstport")),
        )
        if ip_len is not None:
            row["payload_len"] = ip_len - header - 8
    else:
        icmp = _layer(pkt, "icmp") or _layer(pkt, "icmpv6")
        if icmp is not None:
            row["icmp_type"], row["icmp_code"] = (
                _int(_field(icmp, "type")),
                _int(_field(icmp, "code")),
            )
            if ip_len is not None:
                row["payload_len"] = ip_len - header - 8


def _message_head(row: Row) -> Row:
    return {k: row.get(k) for k in ("frame_no", "ts", "src_ip", "dst_ip", "proto")} | {
        "src_port": row.get("src_port"),
        "dst_port": row.get("dst_port"),
    }


def app_row(pkt: Any) -> Row | None:
    """The application message Wireshark's http or dns dissector found in a frame."""
    if "http" in pkt:
        return _http(pkt)
    if "dns" in pkt and "udp" in pkt:
        return _dns(pkt.dns, "")
    if "mdns" in pkt and "udp" in pkt:  # Wireshark's mdns layer holds dns.* fields
        return _dns(pkt.mdns, "dns_")
    if "data" in pkt and "udp" in pkt:
        data = _field(pkt.data, "data")
        if data is not None:
            try:
                payload = bytes.fromhex(data.replace(":", ""))
            except ValueError:
                return None
            if payload.startswith(b"Hostname:"):
                lines = payload.decode("latin-1").splitlines()
                return {"kind": "udp_whoami", **pcap_app.whoami(lines)}
    return None


def _http(pkt: Any) -> Row | None:
    http = pkt.http
    method = _field(http, "request_method")
    if method is not None:
        return {
            "kind": "http_request",
            "http_method": method,
            "http_uri": _field(http, "request_uri"),
            "http_host": _field(http, "host"),
            "http_user_agent": _field(http, "user_agent"),
        }
    code = _field(http, "response_code")
    if code is None:
        return None
    lines: list[str] = []
    if "data-text-lines" in pkt:
        for text in _all(pkt["data-text-lines"], ""):
            lines.append(text.removesuffix("\\n").removesuffix("\\r"))
    whoami = pcap_app.whoami(lines)
    return {
        "kind": "http_response",
        "http_status": _int(code),
        "http_reason": _field(http, "response_phrase"),
        "body_lines": "\n".join(lines[: pcap_app.BODY_LINES]) if lines else None,
        **whoami,
    }


def _dns(layer: Any, prefix: str) -> Row:
    dns = _Prefixed(layer, prefix)
    is_response = _field(dns, "flags_response") in ("1", "True")
    row: Row = {
        "kind": "dns_response" if is_response else "dns_query",
        "dns_id": _int(_field(dns, "id")),
        "dns_qname": _field(dns, "qry_name"),
    }
    qtype = _int(_field(dns, "qry_type"))
    row["dns_qtype"] = None if qtype is None else pcap_app.dns_type(qtype)
    if not is_response:
        return row
    rcode = _int(_field(dns, "flags_rcode")) or 0
    row["dns_rcode"] = pcap_app.DNS_RCODES.get(rcode, str(rcode))
    row["dns_answers"] = _answers(dns)
    return row


class _Prefixed:
    """A layer whose field names carry a prefix (mdns: `dns_qry_name`)."""

    def __init__(self, layer: Any, prefix: str) -> None:
        self.layer, self.prefix = layer, prefix

    def get_field(self, name: str) -> Any:
        return self.layer.get_field(self.prefix + name)


def _answers(dns: Any) -> list[str]:
    """`name TYPE value` for the answer section (Wireshark lists every section's values in
    order, the answers first)."""
    count = _int(_field(dns, "count_answers")) or 0
    names = iter(_all(dns, "resp_name"))
    values = {
        "A": iter(_all(dns, "a")),
        "AAAA": iter(_all(dns, "aaaa")),
        "CNAME": iter(_all(dns, "cname")),
        "NS": iter(_all(dns, "ns")),
        "PTR": iter(_all(dns, "ptr_domain_name")),
    }
    srv = zip(
        *(
            _all(dns, f"srv_{n}")
            for n in ("service", "proto", "name", "priority", "weight", "port", "target")
        ),
        strict=False,
    )
    out = []
    for text in _all(dns, "resp_type")[:count]:
        kind = pcap_app.dns_type(_int(text) or 0)
        if kind == "SRV":
            service, proto, name, prio, weight, port, target = next(srv, ("",) * 7)
            out.append(f"{service}.{proto}.{name} SRV {prio} {weight} {port} {target}")
            continue
        value = next(values[kind], "") if kind in values else ""
        out.append(f"{next(names, '')} {kind} {value}")
    return out

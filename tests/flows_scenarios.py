"""Test helper: write small pcaps of hand-made conversations (dpkt) for the flows tests.

A scenario is a list of Pkt; Tcp keeps each side's next sequence number so a conversation reads
like the tcpdump lines it stands for: ``c.cli("S"), c.srv("SA"), c.cli("A"), c.cli("PA", 100)``.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

import dpkt

FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20}
T0 = 1_000.0  # small, so float seconds keep whole microseconds exact


@dataclass
class Pkt:
    t: float
    src: str
    dst: str
    proto: str = "tcp"  # tcp | udp | icmp | sctp
    sport: int = 0  # icmp: type
    dport: int = 0  # icmp: code
    flags: str = ""
    seq: int = 0
    ack: int = 0
    data: int = 0
    win: int = 65535


class Tcp:
    """One TCP conversation; cli()/srv() append a packet and advance that side's sequence."""

    def __init__(
        self,
        cli: str = "10.0.0.1",
        sport: int = 40000,
        srv: str = "10.0.0.2",
        dport: int = 80,
        *,
        t0: float = T0,
        cisn: int = 1000,
        sisn: int = 5000,
        dt: float = 0.01,
    ) -> None:
        self.ends = {"c": (cli, sport), "s": (srv, dport)}
        self.next_seq = {"c": cisn, "s": sisn}
        self.t = t0
        self.dt = dt
        self.pkts: list[Pkt] = []

    def _send(self, side: str, flags: str, data: int, at: float | None, seq: int | None) -> Pkt:
        self.t = self.t + self.dt if at is None else at
        other = "s" if side == "c" else "c"
        (src, sport), (dst, dport) = self.ends[side], self.ends[other]
        pkt = Pkt(
            self.t,
            src,
            dst,
            "tcp",
            sport,
            dport,
            flags,
            (self.next_seq[side] if seq is None else seq) % 2**32,
            self.next_seq[other] % 2**32 if "A" in flags else 0,
            data,
        )
        if seq is None:
            self.next_seq[side] += data + ("S" in flags) + ("F" in flags)
        self.pkts.append(pkt)
        return pkt

    def cli(
        self, flags: str, data: int = 0, *, at: float | None = None, seq: int | None = None
    ) -> Pkt:
        return self._send("c", flags, data, at, seq)

    def srv(
        self, flags: str, data: int = 0, *, at: float | None = None, seq: int | None = None
    ) -> Pkt:
        return self._send("s", flags, data, at, seq)


def _ip(pkt: Pkt, payload: dpkt.Packet | bytes, proto: int) -> dpkt.Packet:
    src, dst = ipaddress.ip_address(pkt.src), ipaddress.ip_address(pkt.dst)
    if src.version == 6:
        ip6 = dpkt.ip6.IP6(src=src.packed, dst=dst.packed, nxt=proto, hlim=64, data=payload)
        ip6.plen = len(bytes(payload))
        return ip6
    return dpkt.ip.IP(src=src.packed, dst=dst.packed, p=proto, ttl=64, data=payload)


def frame(pkt: Pkt) -> bytes:
    body = b"x" * pkt.data
    if pkt.proto == "tcp":
        bits = sum(FLAG_BITS[f] for f in pkt.flags)
        seg: dpkt.Packet | bytes = dpkt.tcp.TCP(
            sport=pkt.sport,
            dport=pkt.dport,
            seq=pkt.seq,
            ack=pkt.ack,
            flags=bits,
            win=pkt.win,
            data=body,
        )
        proto = 6
    elif pkt.proto == "udp":
        seg = dpkt.udp.UDP(sport=pkt.sport, dport=pkt.dport, data=body)
        seg.ulen = 8 + len(body)
        proto = 17
    elif pkt.proto == "sctp":
        # common header (ports, verification tag, checksum) and one DATA chunk
        chunk = struct.pack("!BBH", 0, 3, 4 + len(body)) + body
        seg = struct.pack("!HHII", pkt.sport, pkt.dport, 1, 0) + chunk
        proto = 132
    else:
        v6 = ":" in pkt.src
        cls = dpkt.icmp6.ICMP6 if v6 else dpkt.icmp.ICMP
        seg = cls(type=pkt.sport, code=pkt.dport, data=b"\x00\x01\x00\x01" + body)
        proto = 58 if v6 else 1
    ip = _ip(pkt, seg, proto)
    eth_type = dpkt.ethernet.ETH_TYPE_IP6 if ":" in pkt.src else dpkt.ethernet.ETH_TYPE_IP
    eth = dpkt.ethernet.Ethernet(
        src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02", type=eth_type, data=ip
    )
    return bytes(eth)


def write_pcap(path: Path, pkts: list[Pkt]) -> Path:
    with path.open("wb") as handle:
        writer = dpkt.pcap.Writer(handle, nano=True)
        for pkt in pkts:
            writer.writepkt(frame(pkt), ts=pkt.t)
    return path

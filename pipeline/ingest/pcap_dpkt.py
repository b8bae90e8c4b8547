"""The per-packet slow path: any link type, tags, options, extension headers, tunnels, fragments.

One Python call per packet, for the packets the vectorised path (pcap_fast) does not take, and as
the reference it is tested against. IPv4, TCP, UDP, ICMP, ICMPv6 and SCTP headers are unpacked
with dpkt; link layers, VLAN/MPLS stacks and IPv6 extension headers are walked here. A frame cut
by the snaplen keeps the fields Wireshark shows for it: headers are unpacked from the captured
bytes padded with zeros, and a field is kept only when its bytes were captured. Wireshark's
grouping is followed: both ports need 4 bytes; the rest of the TCP header (sequence number to
window) appears only when all 16 bytes were captured, and with a data offset below 5 only the
sequence number and segment length do.
"""

from __future__ import annotations

import struct
from typing import Any

import dpkt

from .pcap_batch import (
    LINK_ETHERNET,
    LINK_IPV4,
    LINK_IPV6,
    LINK_LOOP,
    LINK_NULL,
    LINK_SLL,
    LINK_SLL2,
    RAW_LINKS,
)

Row = dict[str, Any]

VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100})
MPLS_TYPES = frozenset({0x8847, 0x8848})
IPV6_EXT = frozenset({0, 43, 44, 51, 60, 135, 139, 140})  # hop, routing, frag, AH, dest, ...
NULL_INET6 = frozenset({24, 28, 30})  # AF_INET6 on NetBSD/OpenBSD, FreeBSD, Darwin
VXLAN_PORTS = frozenset({4789, 8472})
GENEVE_PORT = 6081
TUNNEL_VXLAN, TUNNEL_GENEVE = 1, 2
MAX_DEPTH = 4
SLL_NETLINK = 824  # ARPHRD_NETLINK: the protocol field is a netlink family, not an EtherType

_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from


def decode(data: bytes, wire_len: int, link_type: int, depth: int = 0) -> list[Row]:
    """Rows for one captured frame: the frame itself, then the packets inside its tunnels."""
    pkt = _Packet(data, wire_len, depth)
    pkt.row["link"] = link_type
    l3, version = pkt.link(link_type)
    if version == 4:
        pkt.ipv4(l3)
    elif version == 6:
        pkt.ipv6(l3)
    for row in pkt.inner:  # where and how the frame was captured applies to its contents
        row["pkttype"] = pkt.row.get("pkttype")
        row["ifindex"] = pkt.row.get("ifindex")
        row["is_truncated"] = pkt.row["is_truncated"]
    return [pkt.row, *pkt.inner]


class _Packet:
    def __init__(self, data: bytes, wire_len: int, depth: int) -> None:
        self.cap = len(data)
        self.buf = data
        self.depth = depth
        self.row: Row = {
            "frame_len": wire_len,
            "caplen": self.cap,
            "is_truncated": self.cap < wire_len,
            "depth": depth,
        }
        self.inner: list[Row] = []

    def fits(self, end: int) -> bool:
        return end <= self.cap

    def window(self, at: int, size: int) -> bytes:
        """`size` bytes from `at`, zero-padded past the end (dpkt needs whole headers)."""
        part = self.buf[at : at + size]
        return part + bytes(size - len(part))

    def u16(self, at: int) -> int | None:
        return int(_U16(self.buf, at)[0]) if self.fits(at + 2) else None

    # --- link layers -------------------------------------------------------------------------

    def link(self, link_type: int) -> tuple[int, int | None]:
        """Decode the link layer; returns the network-layer offset and IP version (or None)."""
        if link_type == LINK_ETHERNET:
            return self.ethertype(self.u16(12))
        if link_type in (LINK_SLL, LINK_SLL2):
            sll2 = link_type == LINK_SLL2
            type_at, hatype_at, pkttype_at = (0, 8, 10) if sll2 else (14, 2, 0)
            if self.fits(pkttype_at + (1 if sll2 else 2)):
                self.row["pkttype"] = self.buf[pkttype_at] if sll2 else self.u16(pkttype_at)
            if sll2 and self.fits(8):
                self.row["ifindex"] = _U32(self.buf, 4)[0]
            if self.u16(hatype_at) == SLL_NETLINK:
                return 0, None
            return self.ethertype(self.u16(type_at), header=20 if sll2 else 16)
        if link_type in RAW_LINKS:
            if link_type == LINK_IPV4:
                return 0, 4
            if link_type == LINK_IPV6:
                return 0, 6
            return 0, self.buf[0] >> 4 if self.fits(1) and self.buf[0] >> 4 in (4, 6) else None
        if link_type in (LINK_NULL, LINK_LOOP) and self.fits(4):
            order = ">" if link_type == LINK_LOOP else "<"
            family = struct.unpack_from(order + "I", self.buf)[0]
            if link_type == LINK_NULL and family > 0xFFFF:  # written on a big-endian host
                family = struct.unpack_from(">I", self.buf)[0]
            if family == 2:
                return 4, 4
            if family in NULL_INET6:
                return 4, 6
        return 0, None

    def ethertype(self, etype: int | None, header: int = 14) -> tuple[int, int | None]:
        """Follow the EtherType of a header of `header` bytes through VLAN tags and MPLS."""
        pos = header
        while etype in VLAN_TYPES and self.fits(pos + 4):
            if "vlan" not in self.row:
                self.row["vlan"] = (self.u16(pos) or 0) & 0x0FFF
            etype = self.u16(pos + 2)
            pos += 4
        if etype is None or etype < 0x0600:  # cut, or an 802.3 length (LLC frame)
            return pos, None
        self.row["eth_type"] = etype
        if etype in VLAN_TYPES:
            return pos, None  # the tag itself was cut off
        if etype in MPLS_TYPES:
            while self.fits(pos + 4):
                label = _U32(self.buf, pos)[0]
                pos += 4
                if label & 0x100:  # bottom of stack
                    nibble = self.buf[pos] >> 4 if self.fits(pos + 1) else None
                    return pos, nibble if nibble in (4, 6) else None
            return pos, None
        return pos, {0x0800: 4, 0x86DD: 6}.get(etype)

    # --- network layers ----------------------------------------------------------------------

    def ipv4(self, l3: int) -> None:
        if not self.fits(l3 + 1):
            return
        row, fits = self.row, self.fits
        if self.buf[l3] >> 4 != 4:
            return
        row["ip_version"] = 4
        try:
            ip = dpkt.ip.IP(self.window(l3, 60))
        except dpkt.UnpackError:  # header length below 20 bytes: nothing more is trustworthy
            return
        if fits(l3 + 4):
            row["ip_len"] = ip.len
        if fits(l3 + 6):
            row["ip_id"] = ip.id
        if fits(l3 + 8):
            row["frag_offset"] = ip.offset * 8
            row["is_fragment"] = bool(ip.mf or ip.offset)
        if fits(l3 + 9):
            row["ttl"] = ip.ttl
        if fits(l3 + 10):
            row["proto_num"] = ip.p
        if fits(l3 + 16):
            row["src"] = ip.src
        if fits(l3 + 20):
            row["dst"] = ip.dst
        hdr_len = ip.hl * 4
        if not fits(l3 + 10):
            return
        if ip.offset:  # not the first fragment: no transport header here
            if ip.len >= hdr_len:
                row["payload_len"] = ip.len - hdr_len
            return
        self.transport(l3 + hdr_len, l3 + ip.len, ip.p)

    def ipv6(self, l3: int) -> None:
        row, fits, buf = self.row, self.fits, self.buf
        if not fits(l3 + 1) or buf[l3] >> 4 != 6:
            return
        row["ip_version"] = 6
        if fits(l3 + 6):
            row["ip_len"] = (self.u16(l3 + 4) or 0) + 40
        if fits(l3 + 8):
            row["ttl"] = buf[l3 + 7]
        if fits(l3 + 24):
            row["src"] = buf[l3 + 8 : l3 + 24]
        if fits(l3 + 40):
            row["dst"] = buf[l3 + 24 : l3 + 40]
        if not fits(l3 + 7):
            return
        end = l3 + row["ip_len"]
        nxt, pos = buf[l3 + 6], l3 + 40
        row["is_fragment"] = False
        while nxt in IPV6_EXT:
            if not fits(pos + 2):
                row["proto_num"] = nxt
                return
            if nxt == 44:
                if not fits(pos + 4):
                    row["proto_num"] = nxt
                    return
                offlg = self.u16(pos + 2) or 0
                row["frag_offset"] = offlg & 0xFFF8
                row["is_fragment"] = bool(offlg & 0xFFF9)
                size = 8
            elif nxt == 51:
                size = (buf[pos + 1] + 2) * 4
            else:
                size = (buf[pos + 1] + 1) * 8
            nxt, pos = buf[pos], pos + size
        row["proto_num"] = nxt
        if row.get("frag_offset"):
            row["payload_len"] = end - pos
            return
        self.transport(pos, end, nxt)

    # --- transport layer ---------------------------------------------------------------------

    def transport(self, l4: int, end: int, proto: int) -> None:
        """Ports, TCP fields, ICMP type/code and payload length of the segment at `l4`."""
        row, fits = self.row, self.fits
        header: int | None = 0
        if proto == 6:
            fixed = bytearray(self.window(l4, 20))
            fixed[12] = 0x50 | (fixed[12] & 0x0F)  # dpkt rejects a data offset below 5
            header = self.tcp(l4, dpkt.tcp.TCP(bytes(fixed)))
        elif proto in (17, 132):
            hdr = (dpkt.udp.UDP if proto == 17 else dpkt.sctp.SCTP)(self.window(l4, 12))
            if fits(l4 + 4):  # Wireshark reads both ports before showing either
                row["src_port"], row["dst_port"] = hdr.sport, hdr.dport
            header = 8 if proto == 17 else 12
        elif proto in (1, 58):
            icmp = (dpkt.icmp.ICMP if proto == 1 else dpkt.icmp6.ICMP6)(self.window(l4, 4))
            if fits(l4 + 1):
                row["icmp_type"] = icmp.type
            if fits(l4 + 2):
                row["icmp_code"] = icmp.code
            header = 8
        if header is not None and end - l4 - header >= 0:
            row["payload_len"] = end - l4 - header
            row["payload_off"] = l4 + header
        if proto == 17 and "dst_port" in row and self.depth < MAX_DEPTH:
            self.tunnel(l4 + 8, end, row["dst_port"])

    def tcp(self, l4: int, tcp: Any) -> int | None:
        """TCP fields as Wireshark shows them; returns the header length (None if unknown).

        The ports come first; the rest of the fixed header only when all of it (through the
        window) was captured; with a data offset below 5, only the sequence number.
        """
        row, fits = self.row, self.fits
        if fits(l4 + 4):
            row["src_port"], row["dst_port"] = tcp.sport, tcp.dport
        if not fits(l4 + 16):
            return None
        row["seq"] = tcp.seq
        doff = (self.buf[l4 + 12] >> 4) * 4
        if doff < 20:
            return doff
        row["ack"] = tcp.ack
        row["tcp_flags_bits"] = tcp._off_flags & 0x0FFF
        row["window"] = tcp.win
        cut = l4 + doff > self.cap  # the options run past the captured bytes
        raw = bytes(self.buf[l4 + 20 : min(l4 + doff, self.cap)])
        options = dpkt.tcp.parse_opts(raw)
        at = 0  # where each option starts in `raw`
        for i, option in enumerate(options):
            if option is None or option[0] == dpkt.tcp.TCP_OPT_EOL:
                break
            kind, data = option
            last_and_cut = cut and i == len(options) - 1
            # why: dpkt slices an option whose length byte runs past the options; a timestamp
            # option counts only when it says 10 bytes (as Wireshark and the fast path read it)
            declared = raw[at + 1] if kind != dpkt.tcp.TCP_OPT_NOP and at + 1 < len(raw) else 1
            at += max(2, declared) if kind != dpkt.tcp.TCP_OPT_NOP else 1
            if (
                kind == dpkt.tcp.TCP_OPT_TIMESTAMP
                and declared == 10
                and (len(data) == 8 or last_and_cut)
            ):
                if len(data) >= 4:
                    row["tsval"] = _U32(data, 0)[0]
                if len(data) == 8:
                    row["tsecr"] = _U32(data, 4)[0]
                break
        return doff

    def tunnel(self, start: int, end: int, port: int) -> None:
        """Decode the frame inside a VXLAN or Geneve header at `start` (the UDP payload)."""
        buf, fits = self.buf, self.fits
        if port in VXLAN_PORTS and fits(start + 8):
            kind, vni, inner, inner_link = TUNNEL_VXLAN, _U32(buf, start + 4)[0] >> 8, start + 8, 1
        elif port == GENEVE_PORT and fits(start + 8) and buf[start] >> 6 == 0:
            ptype = self.u16(start + 2)
            found = {0x6558: LINK_ETHERNET, 0x0800: LINK_IPV4, 0x86DD: LINK_IPV6}.get(ptype or 0)
            if found is None:
                return
            inner_link = found
            kind, vni = TUNNEL_GENEVE, _U32(buf, start + 4)[0] >> 8
            inner = start + 8 + (buf[start] & 0x3F) * 4
        else:
            return
        got = min(self.cap, end) - inner
        if got <= 0:
            return
        rows = decode(bytes(buf[inner : inner + got]), end - inner, inner_link, self.depth + 1)
        for row in rows:
            row.setdefault("tunnel", kind)
            row.setdefault("vni", vni)
        self.inner.extend(rows)

"""The vectorised path: the common packets of a batch decoded with array operations.

Covered (everything else goes to pcap_dpkt, packet by packet): link types Ethernet (untagged or
one 802.1Q tag), SLL, SLL2 and raw IP; whole frames (caplen == len); IPv4 without options and not
fragmented, IPv6 without extension headers; TCP, UDP (not to a VXLAN/Geneve port), ICMP over
IPv4 and ICMPv6 over IPv6 with their whole header inside the IP length; and non-IP frames on the
link types above (ARP, LLDP, ...), which only get link-layer fields.

How: for every packet the link-layer fields are read at fixed offsets, then one fixed-size window
of bytes at the network header and one at the transport header are copied out per packet (a
row gather on a sliding-window view of the chunk), and the fields are sliced from those windows.
TCP options are walked in lock-step for all packets (at most 40 steps) to find the timestamps.
"""

from __future__ import annotations

import numpy as np

from pipeline.ingest import pcap_columns
from pipeline.ingest.pcap_batch import (
    LINK_ETHERNET,
    LINK_IPV4,
    LINK_IPV6,
    LINK_RAW,
    LINK_RAW_12,
    LINK_RAW_14,
    LINK_SLL,
    LINK_SLL2,
    RecordBatch,
)
from pipeline.ingest.pcap_dpkt import GENEVE_PORT, MPLS_TYPES, SLL_NETLINK, VLAN_TYPES, VXLAN_PORTS

NET_WINDOW = 40  # IPv6 fixed header (IPv4 uses the first 20 bytes)
L4_WINDOW = 60  # TCP header with the longest options
TUNNEL_PORTS = np.array(sorted(VXLAN_PORTS | {GENEVE_PORT}))
NOT_PLAIN = np.array(sorted(VLAN_TYPES | MPLS_TYPES))


IPV4_HEADER = np.dtype(
    {
        "names": ["first", "len", "id", "frag", "ttl", "proto", "src", "dst"],
        "formats": ["u1", ">u2", ">u2", ">u2", "u1", "u1", ">u4", ">u4"],
        "offsets": [0, 2, 4, 6, 8, 9, 12, 16],
        "itemsize": NET_WINDOW,
    }
)
IPV6_HEADER = np.dtype(
    {
        "names": ["first", "plen", "proto", "ttl", "src_hi", "src_lo", "dst_hi", "dst_lo"],
        "formats": ["u1", ">u2", "u1", "u1", ">u8", ">u8", ">u8", ">u8"],
        "offsets": [0, 4, 6, 7, 8, 16, 24, 32],
        "itemsize": NET_WINDOW,
    }
)
L4_HEADER = np.dtype(  # TCP; UDP and SCTP share the ports; ICMP type/code are sport's bytes
    {
        "names": ["sport", "dport", "seq", "ack", "off_flags", "window"],
        "formats": [">u2", ">u2", ">u4", ">u4", ">u2", ">u2"],
        "offsets": [0, 2, 4, 8, 12, 14],
        "itemsize": L4_WINDOW,
    }
)


def _be16(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (buf[at].astype(np.int64) << 8) | buf[at + 1]


def _col16(m: np.ndarray, c: int) -> np.ndarray:
    return (m[:, c].astype(np.int64) << 8) | m[:, c + 1]


def _col32(m: np.ndarray, c: int) -> np.ndarray:
    return np.ascontiguousarray(m[:, c : c + 4]).view(">u4")[:, 0].astype(np.int64)


def _col64(m: np.ndarray, c: int) -> np.ndarray:
    return np.ascontiguousarray(m[:, c : c + 8]).view(">u8")[:, 0].astype(np.uint64)


class _Link:
    """Link-layer fields of every packet of a batch (-1 where absent)."""

    def __init__(self, n: int) -> None:
        self.l3 = np.zeros(n, np.int64)  # offset of the network header in the buffer
        self.etype = np.full(n, -1, np.int64)
        self.version = np.zeros(n, np.int64)  # 4, 6, or 0 for a non-IP frame
        self.vlan = np.full(n, -1, np.int64)
        self.pkttype = np.full(n, -1, np.int64)
        self.ifindex = np.full(n, -1, np.int64)
        self.ok = np.zeros(n, bool)  # the fast path understands this frame's link layer


def _ethertype_version(link: _Link, idx: np.ndarray | slice, etype: np.ndarray) -> np.ndarray:
    link.etype[idx] = etype
    link.version[idx] = np.where(etype == 0x0800, 4, np.where(etype == 0x86DD, 6, 0))
    return (etype >= 0x0600) & ~np.isin(etype, NOT_PLAIN)


def _link_layer(batch: RecordBatch) -> _Link:
    buf, off, caplen = batch.buf, batch.data_off, batch.caplen
    link = _Link(batch.size)
    groups: list[tuple[int, np.ndarray | slice]]
    if batch.is_pcapng:
        groups = [
            (int(t), np.flatnonzero(batch.link_type == t)) for t in np.unique(batch.link_type)
        ]
    else:
        groups = [(int(batch.link_type[0]), slice(None))] if batch.size else []
    for link_type, idx in groups:
        d, cap = off[idx], caplen[idx]
        if link_type == LINK_ETHERNET:
            outer = _be16(buf, d + 12)
            tagged = outer == 0x8100
            etype = np.where(tagged, _be16(buf, d + 16), outer)
            link.vlan[idx] = np.where(tagged, _be16(buf, d + 14) & 0x0FFF, -1)
            header = np.where(tagged, 18, 14)
            link.l3[idx] = d + header
            plain = _ethertype_version(link, idx, etype)
            link.ok[idx] = plain & (cap >= header) & ~np.isin(outer, NOT_PLAIN[NOT_PLAIN != 0x8100])
        elif link_type in (LINK_SLL, LINK_SLL2):
            sll2 = link_type == LINK_SLL2
            etype = _be16(buf, d + (0 if sll2 else 14))
            hatype = _be16(buf, d + (8 if sll2 else 2))
            link.pkttype[idx] = buf[d + 10] if sll2 else _be16(buf, d)
            if sll2:
                link.ifindex[idx] = (_be16(buf, d + 4) << 16) | _be16(buf, d + 6)
            sll_header = 20 if sll2 else 16
            link.l3[idx] = d + sll_header
            plain = _ethertype_version(link, idx, etype)
            link.ok[idx] = plain & (hatype != SLL_NETLINK) & (cap >= sll_header)
        elif link_type in (LINK_RAW, LINK_RAW_12, LINK_RAW_14, LINK_IPV4, LINK_IPV6):
            nibble = buf[d] >> 4
            link.l3[idx] = d
            link.version[idx] = nibble
            want = {LINK_IPV4: (4,), LINK_IPV6: (6,)}.get(link_type, (4, 6))
            link.ok[idx] = np.isin(nibble, want) & (cap >= 1)
    return link


def decode(batch: RecordBatch) -> tuple[pcap_columns.Cols, np.ndarray]:
    """Columns for the packets the fast path covers, and the indices of all the others."""
    link = _link_layer(batch)
    whole = batch.caplen == batch.wire_len
    candidate = link.ok & whole
    non_ip = np.flatnonzero(candidate & (link.version == 0))
    ip_idx = np.flatnonzero(candidate & (link.version != 0))
    ip_cols, ip_done = _network(batch, link, ip_idx)
    done = np.zeros(batch.size, bool)
    done[non_ip] = True
    done[ip_idx[ip_done]] = True
    cols = pcap_columns.concat([_link_cols(batch, link, non_ip), ip_cols])
    if non_ip.shape[0] and ip_cols["packet"].shape[0]:
        order = np.argsort(cols["packet"], kind="stable")
        cols = {name: values[order] for name, values in cols.items()}
    return cols, np.flatnonzero(~done)


def _link_cols(batch: RecordBatch, link: _Link, idx: np.ndarray) -> pcap_columns.Cols:
    cols = pcap_columns.empty(idx.shape[0])
    cols["packet"] = idx
    cols["depth"][:] = 0
    cols["link"] = batch.link_type[idx].astype(np.int64)
    cols["frame_len"] = batch.wire_len[idx]
    cols["caplen"] = batch.caplen[idx]
    cols["is_truncated"][:] = 0
    cols["eth_type"] = np.where(link.version[idx] >= 0, link.etype[idx], -1)
    cols["vlan"] = link.vlan[idx]
    cols["pkttype"] = link.pkttype[idx]
    cols["ifindex"] = link.ifindex[idx]
    return cols


def _network(
    batch: RecordBatch, link: _Link, idx: np.ndarray
) -> tuple[pcap_columns.Cols, np.ndarray]:
    """Decode IP packets `idx`; returns their columns and which of `idx` were covered."""
    version = link.version[idx]
    parts, covered = [], []
    for family in (4, 6):
        where = np.flatnonzero(version == family)
        if where.shape[0] == 0:
            continue
        cols, keep = _family(batch, link, idx[where], family)
        parts.append(cols)
        covered.append(where[keep])
    cols = pcap_columns.concat(parts)
    if len(parts) == 2:
        order = np.argsort(cols["packet"], kind="stable")
        cols = {name: values[order] for name, values in cols.items()}
    return cols, np.concatenate(covered) if covered else np.empty(0, np.int64)


def _family(
    batch: RecordBatch, link: _Link, idx: np.ndarray, family: int
) -> tuple[pcap_columns.Cols, np.ndarray]:
    """Decode the IPv4 (or IPv6) packets `idx`; their columns and which of `idx` were covered."""
    v4 = family == 4
    l3 = link.l3[idx]
    net = np.lib.stride_tricks.sliding_window_view(batch.buf, NET_WINDOW)[l3]
    hdr = net.view(IPV4_HEADER if v4 else IPV6_HEADER)[:, 0]
    first = hdr["first"]
    if v4:
        ip_len = hdr["len"].astype(np.int64)
        frag = hdr["frag"]
        ok = (first == 0x45) & ((frag & 0x3FFF) == 0) & (ip_len >= 20)
        header = 20
    else:
        ip_len = hdr["plen"].astype(np.int64) + 40
        ok = ((first >> 4) == 6) & (ip_len > 40)
        header = 40
    proto = hdr["proto"].astype(np.int64)
    avail = ip_len - header
    ok &= (l3 - batch.data_off[idx]) + ip_len <= batch.caplen[idx]
    tcp, udp, icmp = proto == 6, proto == 17, proto == (1 if v4 else 58)
    ok &= tcp | udp | icmp
    keep = np.flatnonzero(ok)
    idx, hdr, tcp, udp, icmp = idx[keep], hdr[keep], tcp[keep], udp[keep], icmp[keep]
    avail, proto = avail[keep], proto[keep]
    seg_bytes = np.lib.stride_tricks.sliding_window_view(batch.buf, L4_WINDOW)[l3[keep] + header]
    seg = seg_bytes.view(L4_HEADER)[:, 0]
    off_flags = seg["off_flags"].astype(np.int64)
    doff = (off_flags >> 12) * 4
    sport, dport = seg["sport"].astype(np.int64), seg["dport"].astype(np.int64)
    fine = np.where(tcp, (doff >= 20) & (doff <= avail), avail >= 8)
    fine &= ~(udp & np.isin(dport, TUNNEL_PORTS))
    if not fine.all():
        sub = np.flatnonzero(fine)
        keep, idx, hdr, seg, seg_bytes = keep[sub], idx[sub], hdr[sub], seg[sub], seg_bytes[sub]
        tcp, udp, icmp, avail, proto = tcp[sub], udp[sub], icmp[sub], avail[sub], proto[sub]
        off_flags, doff, sport, dport = off_flags[sub], doff[sub], sport[sub], dport[sub]
    cols = _link_cols(batch, link, idx)
    n = idx.shape[0]
    cols["ip_version"] = np.full(n, family, np.int64)
    cols["proto_num"] = proto
    cols["ttl"] = hdr["ttl"].astype(np.int64)
    cols["ip_len"] = avail + header
    cols["is_fragment"] = np.zeros(n, np.int64)
    if v4:
        cols["ip_id"] = hdr["id"].astype(np.int64)
        cols["frag_offset"] = np.zeros(n, np.int64)
        cols["src_lo"] = hdr["src"].astype(np.uint64)
        cols["dst_lo"] = hdr["dst"].astype(np.uint64)
    else:
        for side in ("src", "dst"):
            cols[f"{side}_hi"] = hdr[f"{side}_hi"].astype(np.uint64)
            cols[f"{side}_lo"] = hdr[f"{side}_lo"].astype(np.uint64)
    cols["src_v"] = cols["dst_v"] = np.full(n, family, np.int64)
    cols["payload_len"] = avail - np.where(tcp, doff, 8)
    ported = tcp | udp
    cols["src_port"] = np.where(ported, sport, -1)
    cols["dst_port"] = np.where(ported, dport, -1)
    cols["icmp_type"] = np.where(icmp, sport >> 8, -1)
    cols["icmp_code"] = np.where(icmp, sport & 0xFF, -1)
    if tcp.any():
        cols["seq"] = np.where(tcp, seg["seq"].astype(np.int64), -1)
        cols["ack"] = np.where(tcp, seg["ack"].astype(np.int64), -1)
        cols["tcp_flags_bits"] = np.where(tcp, off_flags & 0x0FFF, -1)
        cols["window"] = np.where(tcp, seg["window"].astype(np.int64), -1)
        rows = np.flatnonzero(tcp & (doff > 20))
        if rows.shape[0]:
            opts = np.ascontiguousarray(seg_bytes[rows, 20:])
            cols["tsval"][rows], cols["tsecr"][rows] = _timestamps(opts, doff[rows] - 20)
    return cols, keep


def _timestamps(opts: np.ndarray, optlen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TSval/TSecr from TCP option bytes (rows of 40), like dpkt.tcp.parse_opts: the walk stops
    at EOL or at an option cut by the end of the options; the first timestamp option wins."""
    k = opts.shape[0]
    at = np.full(k, -1, np.int64)  # where the timestamp data starts, -1 when there is none
    # the two layouts Linux sends: NOP NOP TS, and MSS SACK_PERM TS (SYN, SYN-ACK)
    nop_nop = (opts[:, 0] == 1) & (opts[:, 1] == 1) & (opts[:, 2] == 8) & (opts[:, 3] == 10)
    at[nop_nop & (optlen >= 12)] = 4
    syn = (opts[:, 0] == 2) & (opts[:, 1] == 4) & (opts[:, 4] == 4) & (opts[:, 5] == 2)
    syn &= (opts[:, 6] == 8) & (opts[:, 7] == 10) & (optlen >= 16)
    at[syn] = 8
    flat = opts.reshape(-1)
    base = np.arange(k, dtype=np.int64) * opts.shape[1]
    live = np.flatnonzero(~(nop_nop | syn))
    pos = np.zeros(live.shape[0], np.int64)
    while live.shape[0]:
        ol = optlen[live]
        inside = pos < ol
        live, pos, ol = live[inside], pos[inside], ol[inside]
        byte = base[live] + pos
        kind = flat[byte]
        length = np.maximum(2, flat[np.minimum(byte + 1, base[live] + 39)]).astype(np.int64)
        go_on = (kind != 0) & ((kind == 1) | (pos + 1 < ol))
        found = go_on & (kind == 8) & (length == 10) & (pos + 10 <= ol)
        at[live[found]] = pos[found] + 2
        keep = go_on & ~found
        live, pos = live[keep], (pos + np.where(kind == 1, 1, length))[keep]
    tsval = np.full(k, -1, np.int64)
    tsecr = np.full(k, -1, np.int64)
    has = np.flatnonzero(at >= 0)
    start = base[has] + at[has]
    tsval[has] = _be32_flat(flat, start)
    tsecr[has] = _be32_flat(flat, start + 4)
    return tsval, tsecr


def _be32_flat(flat: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (
        (flat[at].astype(np.int64) << 24)
        | (flat[at + 1].astype(np.int64) << 16)
        | (flat[at + 2].astype(np.int64) << 8)
        | flat[at + 3]
    )

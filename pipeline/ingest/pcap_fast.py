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

from . import pcap_columns
from .pcap_batch import (
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
from .pcap_dpkt import GENEVE_PORT, MPLS_TYPES, SLL_NETLINK, VLAN_TYPES, VXLAN_PORTS

TUNNEL_PORTS = tuple(sorted(VXLAN_PORTS | {GENEVE_PORT}))
NOT_PLAIN = tuple(sorted(VLAN_TYPES | MPLS_TYPES))  # tags and labels: the slow path's job
QINQ_TYPES = tuple(sorted(VLAN_TYPES - {0x8100} | MPLS_TYPES))  # not a single 802.1Q tag


OPTIONS_IN_WINDOW = 12  # NOP NOP TIMESTAMP, what Linux puts on every segment after the SYN
_TCP = (  # TCP header fields; UDP and SCTP share the ports, ICMP type/code are sport's bytes
    ("sport", ">u2", 0),
    ("dport", ">u2", 2),
    ("seq", ">u4", 4),
    ("ack", ">u4", 8),
    ("off_flags", ">u2", 12),
    ("window", ">u2", 14),
)


def _layout(ip: tuple[tuple[str, str, int], ...], header: int) -> np.dtype:
    """One fixed window per packet: the IP header, then the transport header and options."""
    fields = [*ip, *((name, fmt, header + at) for name, fmt, at in _TCP)]
    return np.dtype(
        {
            "names": [f[0] for f in fields],
            "formats": [f[1] for f in fields],
            "offsets": [f[2] for f in fields],
            "itemsize": header + 20 + OPTIONS_IN_WINDOW,
        }
    )


V4_WINDOW = _layout(
    (
        ("first", "u1", 0),
        ("len", ">u2", 2),
        ("id", ">u2", 4),
        ("frag", ">u2", 6),
        ("ttl", "u1", 8),
        ("proto", "u1", 9),
        ("src", ">u4", 12),
        ("dst", ">u4", 16),
    ),
    20,
)
V6_WINDOW = _layout(
    (
        ("first", "u1", 0),
        ("plen", ">u2", 4),
        ("proto", "u1", 6),
        ("ttl", "u1", 7),
        ("src_hi", ">u8", 8),
        ("src_lo", ">u8", 16),
        ("dst_hi", ">u8", 24),
        ("dst_lo", ">u8", 32),
    ),
    40,
)


def _any_of(values: np.ndarray, choices: tuple[int, ...]) -> np.ndarray:
    hit = values == choices[0]
    for choice in choices[1:]:
        hit |= values == choice
    return hit


def _be16(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (buf[at].astype(np.int64) << 8) | buf[at + 1]


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
    return (etype >= 0x0600) & ~_any_of(etype, NOT_PLAIN)


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
            link.ok[idx] = plain & (cap >= header) & ~_any_of(outer, QINQ_TYPES)
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
    zeros = np.zeros(idx.shape[0], np.int64)
    cols = {
        "packet": idx,
        "depth": zeros,
        "is_truncated": zeros,
        "link": batch.link_type[idx].astype(np.int64),
        "frame_len": batch.wire_len[idx],
        "caplen": batch.caplen[idx],
        "eth_type": link.etype[idx],
    }
    for name, values in (("vlan", link.vlan), ("pkttype", link.pkttype), ("ifindex", link.ifindex)):
        if (values[idx] >= 0).any():
            cols[name] = values[idx]
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
    header = 20 if v4 else 40
    layout = V4_WINDOW if v4 else V6_WINDOW
    l3 = link.l3[idx]
    window = np.lib.stride_tricks.sliding_window_view(batch.buf, layout.itemsize)[l3]
    pkt = window.view(layout)[:, 0]
    if v4:
        ip_len = pkt["len"].astype(np.int64)
        ok = (pkt["first"] == 0x45) & ((pkt["frag"] & 0x3FFF) == 0) & (ip_len >= 20)
    else:
        ip_len = pkt["plen"].astype(np.int64) + 40
        ok = ((pkt["first"] >> 4) == 6) & (ip_len > 40)
    proto = pkt["proto"].astype(np.int64)
    avail = ip_len - header
    ok &= (l3 - batch.data_off[idx]) + ip_len <= batch.caplen[idx]
    tcp, udp = proto == 6, proto == 17
    icmp = proto == (1 if v4 else 58)
    off_flags = pkt["off_flags"].astype(np.int64)
    doff = (off_flags >> 12) * 4
    dport = pkt["dport"].astype(np.int64)
    ok &= np.where(tcp, (doff >= 20) & (doff <= avail), (udp | icmp) & (avail >= 8))
    ok &= ~(udp & _any_of(dport, TUNNEL_PORTS))
    keep = np.flatnonzero(ok)
    if keep.shape[0] < idx.shape[0]:
        idx, l3, window, pkt = idx[keep], l3[keep], window[keep], pkt[keep]
        tcp, udp, icmp, avail, proto = tcp[keep], udp[keep], icmp[keep], avail[keep], proto[keep]
        off_flags, doff, dport = off_flags[keep], doff[keep], dport[keep]
    cols = _link_cols(batch, link, idx)
    n = idx.shape[0]
    zeros = np.zeros(n, np.int64)
    cols["ip_version"] = np.full(n, family, np.int64)
    cols["proto_num"] = proto
    cols["ttl"] = pkt["ttl"].astype(np.int64)
    cols["ip_len"] = avail + header
    cols["is_fragment"] = zeros
    if v4:
        cols["ip_id"] = pkt["id"].astype(np.int64)
        cols["frag_offset"] = zeros
        cols["src_lo"] = pkt["src"].astype(np.uint64)
        cols["dst_lo"] = pkt["dst"].astype(np.uint64)
    else:
        for side in ("src", "dst"):
            cols[f"{side}_hi"] = pkt[f"{side}_hi"].astype(np.uint64)
            cols[f"{side}_lo"] = pkt[f"{side}_lo"].astype(np.uint64)
    cols["src_v"] = cols["dst_v"] = np.full(n, family, np.int64)
    cols["payload_len"] = avail - np.where(tcp, doff, 8)
    cols["payload_off"] = l3 - batch.data_off[idx] + header + np.where(tcp, doff, 8)
    sport = pkt["sport"].astype(np.int64)
    ported = tcp | udp
    if ported.any():
        cols["src_port"] = np.where(ported, sport, -1)
        cols["dst_port"] = np.where(ported, dport, -1)
    if icmp.any():
        cols["icmp_type"] = np.where(icmp, sport >> 8, -1)
        cols["icmp_code"] = np.where(icmp, sport & 0xFF, -1)
    if tcp.any():
        cols["seq"] = np.where(tcp, pkt["seq"].astype(np.int64), -1)
        cols["ack"] = np.where(tcp, pkt["ack"].astype(np.int64), -1)
        cols["tcp_flags_bits"] = np.where(tcp, off_flags & 0x0FFF, -1)
        cols["window"] = np.where(tcp, pkt["window"].astype(np.int64), -1)
        _options(cols, batch, window, l3 + header, tcp, doff, header)
    return cols, keep


def _options(
    cols: pcap_columns.Cols,
    batch: RecordBatch,
    window: np.ndarray,
    l4: np.ndarray,
    tcp: np.ndarray,
    doff: np.ndarray,
    header: int,
) -> None:
    """TCP timestamps: from the window when the options fit in it, else from a second gather."""
    in_window = window.shape[1] - header - 20
    cols["tsval"] = np.full(tcp.shape[0], -1, np.int64)
    cols["tsecr"] = np.full(tcp.shape[0], -1, np.int64)
    short = np.flatnonzero(tcp & (doff > 20) & (doff - 20 <= in_window))
    if short.shape[0]:
        opts = np.ascontiguousarray(window[short, header + 20 :])
        cols["tsval"][short], cols["tsecr"][short] = _timestamps(opts, doff[short] - 20)
    long = np.flatnonzero(tcp & (doff - 20 > in_window))
    if long.shape[0]:
        opts = np.lib.stride_tricks.sliding_window_view(batch.buf, 40)[l4[long] + 20]
        cols["tsval"][long], cols["tsecr"][long] = _timestamps(opts, doff[long] - 20)


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
        last = base[live] + opts.shape[1] - 1
        length = np.maximum(2, flat[np.minimum(byte + 1, last)]).astype(np.int64)
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

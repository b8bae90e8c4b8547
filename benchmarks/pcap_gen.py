"""Write a large synthetic pcap fast (numpy): short TCP connections plus some DNS-like UDP.

Every connection is 10 packets between a client and a server on port 80 (SYN, SYN-ACK, ACK,
request, ACK, response, ACK, FIN-ACK, FIN-ACK, ACK) with Linux-style TCP options; every fourth
connection is accompanied by a UDP query/response pair to port 53. IPv4 header checksums are set;
TCP/UDP checksums are 0 (as with checksum offload). Packets are in time order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ETH = bytes.fromhex("02000000000202000000000108 00".replace(" ", ""))
SYN_OPTS = bytes.fromhex("020405b40402080a0000000000000000" + "01030307")
TS_OPTS = bytes.fromhex("0101080a0000000000000000")


@dataclass(frozen=True)
class Kind:
    """One packet position of a connection: direction, flags, options and payload size."""

    from_client: bool
    proto: int
    flags: int
    opts: bytes
    payload: int
    offset_us: int


def _kinds(request: int, response: int) -> list[Kind]:
    syn, ack, psh, fin = 0x02, 0x10, 0x08, 0x01
    return [
        Kind(True, 6, syn, SYN_OPTS, 0, 0),
        Kind(False, 6, syn | ack, SYN_OPTS, 0, 100),
        Kind(True, 6, ack, TS_OPTS, 0, 200),
        Kind(True, 6, psh | ack, TS_OPTS, request, 210),
        Kind(False, 6, ack, TS_OPTS, 0, 300),
        Kind(False, 6, psh | ack, TS_OPTS, response, 900),
        Kind(True, 6, ack, TS_OPTS, 0, 1000),
        Kind(True, 6, fin | ack, TS_OPTS, 0, 1100),
        Kind(False, 6, fin | ack, TS_OPTS, 0, 1200),
        Kind(True, 6, ack, TS_OPTS, 0, 1300),
        Kind(True, 17, 0, b"", 40, 50),
        Kind(False, 17, 0, b"", 120, 80),
    ]


def _be(values: np.ndarray, width: int) -> np.ndarray:
    dtype = {2: ">u2", 4: ">u4"}[width]
    return values.astype(dtype).view(np.uint8).reshape(-1, width)


def _le32(values: np.ndarray) -> np.ndarray:
    return values.astype("<u4").view(np.uint8).reshape(-1, 4)


def _rows(kind: Kind, conn: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Records (pcap record header + frame) of one packet kind for the given connections."""
    l4_len = (20 + len(kind.opts)) if kind.proto == 6 else 8
    ip_len = 20 + l4_len + kind.payload
    frame = 14 + ip_len
    rows = np.zeros((conn.shape[0], 16 + frame), np.uint8)
    rows[:, 0:4] = _le32(ts_us // 1_000_000)
    rows[:, 4:8] = _le32(ts_us % 1_000_000)
    rows[:, 8:12] = _le32(np.full(conn.shape[0], frame))
    rows[:, 12:16] = _le32(np.full(conn.shape[0], frame))
    rows[:, 16:30] = np.frombuffer(ETH, np.uint8)
    ip = 30
    client = (10 << 24) | (1 << 16) | (conn % 60000 + 2).astype(np.int64)
    server = np.int64((10 << 24) | (96 << 16) | (0 << 8) | 10) + (conn % 7)
    src, dst = (client, server) if kind.from_client else (server, client)
    rows[:, ip] = 0x45
    rows[:, ip + 2 : ip + 4] = _be(np.full(conn.shape[0], ip_len), 2)
    rows[:, ip + 4 : ip + 6] = _be((conn * 7 + kind.offset_us) & 0xFFFF, 2)
    rows[:, ip + 6] = 0x40  # DF
    rows[:, ip + 8] = 64 if kind.from_client else 63
    rows[:, ip + 9] = kind.proto
    rows[:, ip + 12 : ip + 16] = _be(src, 4)
    rows[:, ip + 16 : ip + 20] = _be(dst, 4)
    words = rows[:, ip : ip + 20].astype(np.int64)
    total = (words[:, 0::2] << 8 | words[:, 1::2]).sum(axis=1)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    rows[:, ip + 10 : ip + 12] = _be(~total & 0xFFFF, 2)
    l4 = ip + 20
    cport = 20000 + (conn * 13) % 40000
    sport, dport = (cport, np.full_like(cport, 80)) if kind.from_client else (80 + 0 * cport, cport)
    if kind.proto == 17:
        sport, dport = (cport, 53 + 0 * cport) if kind.from_client else (53 + 0 * cport, cport)
        rows[:, l4 : l4 + 2] = _be(sport, 2)
        rows[:, l4 + 2 : l4 + 4] = _be(dport, 2)
        rows[:, l4 + 4 : l4 + 6] = _be(np.full(conn.shape[0], 8 + kind.payload), 2)
        return rows
    rows[:, l4 : l4 + 2] = _be(sport, 2)
    rows[:, l4 + 2 : l4 + 4] = _be(dport, 2)
    isn_c = (conn * 2654435761) & 0xFFFFFFFF
    isn_s = (conn * 40503 + 12345) & 0xFFFFFFFF
    seq, ack = _seq_ack(kind, isn_c, isn_s)
    rows[:, l4 + 4 : l4 + 8] = _be(seq & 0xFFFFFFFF, 4)
    rows[:, l4 + 8 : l4 + 12] = _be(ack & 0xFFFFFFFF, 4)
    rows[:, l4 + 12] = ((20 + len(kind.opts)) // 4) << 4
    rows[:, l4 + 13] = kind.flags
    rows[:, l4 + 14 : l4 + 16] = _be(np.full(conn.shape[0], 64240), 2)
    opts = l4 + 20
    rows[:, opts : opts + len(kind.opts)] = np.frombuffer(kind.opts, np.uint8)
    ts_at = opts + (8 if kind.flags & 0x02 else 4)
    rows[:, ts_at : ts_at + 4] = _be((ts_us // 1000) & 0xFFFFFFFF, 4)
    rows[:, l4 + 20 + len(kind.opts) :] = 0x61  # payload 'aaaa'
    return rows


def _seq_ack(kind: Kind, isn_c: np.ndarray, isn_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sequence/ack numbers for the fixed 10-packet exchange (request 100, response 300)."""
    table = {  # offset_us -> (seq offset from ISN, ack offset from peer ISN)
        0: (0, None),
        100: (0, 1),
        200: (1, 1),
        210: (1, 1),
        300: (1, 1 + 100),
        900: (1, 1 + 100),
        1000: (1 + 100, 1 + 300),
        1100: (1 + 100, 1 + 300),
        1200: (1 + 300, 1 + 100 + 1),
        1300: (1 + 100 + 1, 1 + 300 + 1),
    }
    seq_off, ack_off = table[kind.offset_us]
    own, peer = (isn_c, isn_s) if kind.from_client else (isn_s, isn_c)
    ack = np.zeros_like(own) if ack_off is None else peer + ack_off
    return own + seq_off, ack


def generate(path: Path | str, packets: int, request: int = 100, response: int = 300) -> int:
    """Write a pcap with at least `packets` packets; returns the exact number written."""
    kinds = _kinds(request, response)
    per_group = 4 * 10 + 2  # 4 connections + 1 UDP exchange
    groups = -(-packets // per_group)
    written = 0
    with Path(path).open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        step = 20_000
        for first in range(0, groups, step):
            g = np.arange(first, min(groups, first + step), dtype=np.int64)
            written += _write_groups(out, kinds, g)
    return written


def _write_groups(out: object, kinds: list[Kind], groups: np.ndarray) -> int:
    t0 = 1_700_000_000 * 1_000_000
    records: list[np.ndarray] = []
    times: list[np.ndarray] = []
    for c in range(4):
        conn = groups * 4 + c
        start = t0 + conn * 250  # a new connection every 250 us, each lasting 1.3 ms
        for kind in kinds[:10]:
            records.append(_rows(kind, conn, start + kind.offset_us))
            times.append(start + kind.offset_us)
    for kind in kinds[10:]:
        start = t0 + groups * 1000 + 7
        records.append(_rows(kind, groups, start + kind.offset_us))
        times.append(start + kind.offset_us)
    ts = np.concatenate(times)
    sizes = np.concatenate([np.full(r.shape[0], r.shape[1]) for r in records])
    order = np.argsort(ts, kind="stable")
    starts = np.zeros(ts.shape[0], np.int64)
    starts[order] = np.concatenate(([0], np.cumsum(sizes[order])[:-1]))
    flat = np.empty(int(sizes.sum()), np.uint8)
    at = 0
    for rows in records:
        idx = starts[at : at + rows.shape[0], None] + np.arange(rows.shape[1])
        flat[idx] = rows
        at += rows.shape[0]
    out.write(flat.tobytes())  # type: ignore[attr-defined]
    return int(ts.shape[0])

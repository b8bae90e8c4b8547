"""pcapng files: sections, interfaces and packet blocks, chunk by chunk.

Blocks are 32-bit aligned and carry their length twice (at the start and as a trailer), so runs of
Enhanced Packet Blocks are found in bulk: every aligned word equal to the EPB type whose length
and trailer agree is a candidate, and the chain of blocks is followed through runs of consecutive
candidates (as in pcap_framing). Every other block is handled one by one in Python: SHB (new
section, byte order), IDB (interface: link type, if_tsresol, if_tsoffset, if_name), SPB and the
obsolete Packet Block; NRB, ISB, DSB, systemd journal and custom blocks are skipped; other block
types are skipped and counted in a warning at the end of the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .pcap_batch import (
    CHUNK_BYTES,
    MAX_CAPLEN,
    TS_MISSING,
    ChunkReader,
    RecordBatch,
    Stream,
    hex_head,
)
from .records import RecordError

SHB, IDB, OPB, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6
SKIPPED = {4: "NRB", 5: "ISB", 9: "systemd journal", 0x0A: "DSB", 0xBAD: "custom"}
SKIPPED[0x40000BAD] = "custom"
BYTE_ORDER_MAGIC = 0x1A2B3C4D
MAX_BLOCK = MAX_CAPLEN + 1024
EPB_HEADER = 28  # type, length, interface, ts high, ts low, caplen, len


@dataclass
class Interface:
    """One Interface Description Block."""

    link_type: int
    snaplen: int
    name: str | None = None
    units_per_s: int = 1_000_000  # timestamp units per second (if_tsresol)
    offset_s: int = 0  # if_tsoffset

    def to_ns(self, ticks: np.ndarray) -> np.ndarray:
        """Timestamps in ns since the epoch from 64-bit timestamps in this interface's units."""
        ticks = ticks.astype(np.int64)
        units = self.units_per_s
        if units == 1_000_000_000:
            ns = ticks
        elif 1_000_000_000 % units == 0:
            ns = ticks * (1_000_000_000 // units)
        else:
            sec = ticks // units
            frac = ticks % units
            ns = sec * 1_000_000_000 + (frac.astype(np.float64) * 1e9 / units).astype(np.int64)
        return ns + self.offset_s * 1_000_000_000


@dataclass
class _Section:
    order: str
    interfaces: list[Interface] = field(default_factory=list)


def check_start(head: bytes, path: str) -> None:
    """A pcapng file starts with a Section Header Block; anything else raises InputError."""
    if len(head) < 12:
        raise InputError(path, f"file ends inside the first pcapng block ({len(head)} bytes)")
    if struct.unpack_from("<I", head)[0] != SHB:
        raise InputError(path, "not a pcapng file (no Section Header Block)", offset=0)
    if _order(head, 0) is None:
        raise InputError(path, f"bad pcapng byte-order magic {head[8:12].hex()}", offset=8)


def _order(buf: bytes | np.ndarray, pos: int) -> str | None:
    magic = bytes(buf[pos + 8 : pos + 12])
    if magic == struct.pack("<I", BYTE_ORDER_MAGIC):
        return "<"
    if magic == struct.pack(">I", BYTE_ORDER_MAGIC):
        return ">"
    return None


def _options(body: bytes, order: str) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        if code == 0:
            return
        yield code, body[pos + 4 : pos + 4 + length]
        pos += 4 + (length + 3) // 4 * 4


def parse_idb(body: bytes, order: str) -> Interface:
    """An IDB body (after type and length): link type, snaplen and the options we use."""
    link_type, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
    iface = Interface(link_type, snaplen)
    for code, value in _options(body[8:], order):
        if code == 2:
            iface.name = value.decode("utf-8", "replace").rstrip("\x00")
        elif code == 9 and value:
            res = value[0]
            iface.units_per_s = 2 ** (res & 0x7F) if res & 0x80 else 10 ** min(res, 18)
        elif code == 14 and len(value) == 8:
            iface.offset_s = struct.unpack(order + "q", value)[0]
    return iface


class _Reader:
    """Walks the blocks of a pcapng file; one instance per file."""

    def __init__(self, handle: Stream, chunk_bytes: int) -> None:
        self.size = handle.seek(0, 2)
        self.reader = ChunkReader(handle, 0, chunk_bytes)
        self.section = _Section("<")
        self.frame_no = 1
        self.unknown: dict[int, tuple[int, int]] = {}  # type -> (count, first offset)
        self.stop = False

    def batches(self) -> Iterator[RecordBatch]:
        reader = self.reader
        reader.advance(0)
        while True:
            batch, end = self._chunk()
            if reader.eof and end >= reader.n:
                self.stop = True
            if self.stop:
                batch.errors.extend(self._unknown_warnings())
            if batch.records_read or batch.errors:
                yield batch
            if self.stop:
                return
            reader.advance(end, self._need(end))

    def _need(self, pos: int) -> int:
        """Bytes the block at `pos` needs in the buffer (to read it whole next time)."""
        view, n = self.reader.view, self.reader.n
        if pos + 12 > n:
            return 12
        order = self.section.order
        if struct.unpack_from("<I", view, pos)[0] == SHB:
            order = _order(self.reader.buf, pos) or order
        return min(max(12, struct.unpack_from(order + "I", view, pos + 4)[0]), MAX_BLOCK)

    def _unknown_warnings(self) -> list[RecordError]:
        return [
            RecordError(
                f"{count} pcapng block(s) of unknown type 0x{btype:08x} skipped",
                "",
                offset=first,
                is_rejection=False,
            )
            for btype, (count, first) in sorted(self.unknown.items())
        ]

    def _chunk(self) -> tuple[RecordBatch, int]:
        """Collect the packets of the current buffer; returns the batch and where it stopped."""
        buf, n = self.reader.buf, self.reader.n
        found = _Found()
        pos = 0
        new_section = False
        while pos + 12 <= n:
            order = self.section.order
            btype, length = struct.unpack_from(order + "II", self.reader.view, pos)
            if btype == SHB:
                if found.packets:
                    new_section = True  # a new section (maybe another byte order): new batch
                    break
                shb_order = _order(buf, pos)
                if shb_order is None:
                    magic = bytes(buf[pos + 8 : pos + 12]).hex()
                    found.reject(pos, f"bad byte-order magic {magic} in a section header")
                    self.stop = True
                    break
                order = shb_order
                length = struct.unpack_from(order + "I", self.reader.view, pos + 4)[0]
            problem = _block_problem(self.reader.view, n, pos, order, length)
            if problem == "incomplete":
                break
            if problem is not None:
                left = self.size - self.reader.base - pos
                found.reject(
                    pos, f"damaged pcapng block: {problem}; reading stopped, {left} bytes not read"
                )
                self.stop = True
                break
            if btype == EPB:
                run, after = self._epb_run(buf, n, pos)
                if run.shape[0]:
                    found.runs.append(run)
                    pos = after
                    continue
            self._one_block(buf, pos, btype, length, found)
            pos += length
        if self.reader.eof and not self.stop and not new_section and pos < n:
            found.reject(pos, _cut_reason(self.reader.view, n, pos, self.section.order))
            self.stop = True
        return self._batch(buf, found), pos

    def _epb_run(self, buf: np.ndarray, n: int, pos: int) -> tuple[np.ndarray, int]:
        """Word positions of consecutive well-formed EPBs from `pos`, and where the run ended."""
        words = _words(buf, self.section.order)
        start, last = pos // 4, (n - 32) // 4
        cand = np.flatnonzero(words[start : last + 1] == EPB) + start
        length = words[cand + 1].astype(np.int64)
        fits = (length >= 32) & (length % 4 == 0) & (cand * 4 + length <= n)
        cand, length = cand[fits], length[fits]
        good = (
            (words[cand + length // 4 - 1] == length)
            & (words[cand + 5] <= length - 32)
            & (words[cand + 2] < len(self.section.interfaces))
        )
        cand, length = cand[good], length[good]
        if cand.shape[0] == 0 or cand[0] != start:
            return np.empty(0, np.int64), pos
        nxt = cand + length // 4
        breaks = np.flatnonzero(nxt[:-1] != cand[1:])
        out: list[np.ndarray] = []
        k, b = 0, 0
        while True:
            while b < breaks.shape[0] and breaks[b] < k:
                b += 1
            j = int(breaks[b]) if b < breaks.shape[0] else cand.shape[0] - 1
            out.append(cand[k : j + 1])
            target = int(nxt[j])
            w = int(np.searchsorted(cand, target))
            if w >= cand.shape[0] or cand[w] != target:
                return np.concatenate(out), target * 4
            k = w

    def _one_block(self, buf: np.ndarray, pos: int, btype: int, length: int, found: _Found) -> None:
        order = self.section.order
        body = bytes(buf[pos + 8 : pos + length - 4])
        interfaces = self.section.interfaces
        if btype == SHB:
            self.section = _Section(_order(buf, pos) or order)
        elif btype == IDB:
            if len(body) < 8:
                found.reject(pos, "Interface Description Block too short")
                return
            interfaces.append(parse_idb(body, order))
        elif btype in (EPB, OPB):
            if btype == EPB:
                iface, hi, lo, caplen, wire_len = struct.unpack_from(order + "5I", body)
            else:
                iface, _drops, hi, lo, caplen, wire_len = struct.unpack_from(order + "HH4I", body)
            if iface >= len(interfaces):
                found.reject(pos, f"packet block refers to interface {iface}, which no IDB defined")
            elif caplen > length - 32:
                found.reject(pos, f"captured length {caplen} does not fit in a {length}-byte block")
            else:
                ts = interfaces[iface].to_ns(np.array([(hi << 32) | lo], np.uint64))[0]
                found.add(pos, pos + EPB_HEADER, caplen, wire_len, int(ts), iface)
        elif btype == SPB:
            if not interfaces:
                found.reject(pos, "Simple Packet Block before any Interface Description Block")
                return
            wire_len = struct.unpack_from(order + "I", body)[0]
            caplen = min(wire_len, length - 16)
            if interfaces[0].snaplen:
                caplen = min(caplen, interfaces[0].snaplen)
            found.add(pos, pos + 12, caplen, wire_len, int(TS_MISSING), 0)
        elif btype not in SKIPPED:
            count, first = self.unknown.get(btype, (0, self.reader.base + pos))
            self.unknown[btype] = (count + 1, first)

    def _batch(self, buf: np.ndarray, found: _Found) -> RecordBatch:
        order = self.section.order
        words = _words(buf, order)
        run = np.concatenate(found.runs) if found.runs else np.empty(0, np.int64)
        pos = run * 4
        data_off = pos + EPB_HEADER
        iface = words[run + 2].astype(np.int32)
        ticks = (words[run + 3].astype(np.uint64) << np.uint64(32)) | words[run + 4]
        caplen = words[run + 5].astype(np.int64)
        wire_len = words[run + 6].astype(np.int64)
        ts_ns = np.full(run.shape[0], TS_MISSING, np.int64)
        for i, interface in enumerate(self.section.interfaces):
            mask = iface == i
            if mask.any():
                ts_ns[mask] = interface.to_ns(ticks[mask])
        if found.singles:
            one = np.array(found.singles, np.int64).reshape(-1, 6)
            pos = np.concatenate([pos, one[:, 0]])
            order_idx = np.argsort(pos, kind="stable")
            pos = pos[order_idx]
            data_off = np.concatenate([data_off, one[:, 1]])[order_idx]
            caplen = np.concatenate([caplen, one[:, 2]])[order_idx]
            wire_len = np.concatenate([wire_len, one[:, 3]])[order_idx]
            ts_ns = np.concatenate([ts_ns, one[:, 4]])[order_idx]
            iface = np.concatenate([iface, one[:, 5].astype(np.int32)])[order_idx]
        links = np.array([i.link_type for i in self.section.interfaces] or [0], np.int32)
        first = self.frame_no
        errors = [
            RecordError(
                reason,
                hex_head(buf[at : min(self.reader.n, at + 32)]),
                line=first + int(np.searchsorted(pos, at)),
                offset=self.reader.base + at,
            )
            for at, reason in found.rejected
        ]
        self.frame_no += pos.shape[0]
        names = {i: f.name for i, f in enumerate(self.section.interfaces) if f.name}
        return RecordBatch(
            buf=buf,
            data_off=data_off,
            caplen=caplen,
            wire_len=wire_len,
            ts_ns=ts_ns,
            link_type=links[iface],
            iface_id=iface,
            first_frame_no=first,
            iface_names=names,
            is_pcapng=True,
            errors=errors,
            records_read=pos.shape[0] + len(errors),
        )


@dataclass
class _Found:
    """Packets and rejected records found in one chunk, by byte position."""

    runs: list[np.ndarray] = field(default_factory=list)
    singles: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def packets(self) -> bool:
        return bool(self.runs or self.singles)

    def add(self, pos: int, data: int, caplen: int, wire_len: int, ts: int, iface: int) -> None:
        self.singles.append((pos, data, caplen, wire_len, ts, iface))

    def reject(self, pos: int, reason: str) -> None:
        self.rejected.append((pos, reason))


def _words(buf: np.ndarray, order: str) -> np.ndarray:
    usable = buf.shape[0] // 4 * 4
    return buf[:usable].view(order + "u4")


def _block_problem(buf: memoryview, n: int, pos: int, order: str, length: int) -> str | None:
    if length < 12 or length % 4 or length > MAX_BLOCK:
        return f"block length {length} is impossible"
    if pos + length > n:
        return "incomplete"
    trailer = struct.unpack_from(order + "I", buf, pos + length - 4)[0]
    if trailer != length:
        return f"block length {length} and trailing length {trailer} differ"
    return None


def _cut_reason(buf: memoryview, n: int, pos: int, order: str) -> str:
    if pos + 8 <= n:
        btype, length = struct.unpack_from(order + "II", buf, pos)
        present = f"{n - pos} of {length} bytes present"
        return f"file cut off inside a block of type 0x{btype:08x}: {present}"
    return f"file cut off inside a block header: {n - pos} of 8 bytes present"


def iter_batches(handle: Stream, chunk_bytes: int = CHUNK_BYTES) -> Iterator[RecordBatch]:
    """Yield the packets of a pcapng file chunk by chunk."""
    yield from _Reader(handle, chunk_bytes).batches()

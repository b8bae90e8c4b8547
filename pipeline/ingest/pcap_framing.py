"""Classic pcap files: the file header and the record boundaries, chunk by chunk.

Record boundaries are a chain (each header gives the length of its record), so finding them is
sequential. Instead of one Python step per record, every chunk is searched in bulk for positions
that can start a record header: the top byte of the seconds field equals the current record's
(one byte compare over the chunk), then per candidate the next byte is within one step of it (so
~18 hours of capture), the top bytes of both lengths are 0 and the fraction's top byte is in
range. Each candidate's successor is computed with array operations and the chain is followed
through runs of consecutive candidates; Python only steps over the rare false candidates inside
packet data and over chunk ends (and restarts the search where the seconds change). The chain
starts at a known record and only ever moves by a record's own length, so a false candidate can
make it slower, never wrong; every header on the chain is then checked like any reader would.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .pcap_batch import (
    CHUNK_BYTES,
    MAX_CAPLEN,
    ChunkReader,
    RecordBatch,
    Stream,
    hex_head,
)
from .records import RecordError

FILE_HEADER_BYTES = 24
RECORD_HEADER_BYTES = 16
STANDARD_MAX_CAPLEN = 262144  # Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD, libpcap's max snaplen

_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}


@dataclass(frozen=True)
class PcapHeader:
    """The 24-byte pcap file header."""

    order: str  # struct byte order of every field: '<' or '>'
    nanos: bool  # nanosecond timestamps (magic a1b23c4d)
    version: tuple[int, int]
    snaplen: int
    link_type: int  # LINKTYPE_ value (FCS bits of the field masked off)

    @property
    def max_caplen(self) -> int:
        return min(max(self.snaplen, STANDARD_MAX_CAPLEN), MAX_CAPLEN)


def read_header(head: bytes, path: str) -> PcapHeader:
    """Parse the file header; a file that cannot be a pcap raises InputError."""
    if len(head) < FILE_HEADER_BYTES:
        raise InputError(
            path,
            f"file ends inside the pcap file header ({len(head)} of {FILE_HEADER_BYTES} bytes)",
            offset=0,
        )
    magic = _MAGICS.get(head[:4])
    if magic is None:
        raise InputError(path, f"not a pcap file (magic {head[:4].hex()})", offset=0)
    order, nanos = magic
    major, minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(order + "HHiIII", head, 4)
    return PcapHeader(order, nanos, (major, minor), snaplen, network & 0x03FFFFFF)


def header_problem(hdr: PcapHeader, frac: int, caplen: int, wire_len: int) -> str | None:
    """Why a record header cannot be right (it is damaged), or None when it is plausible."""
    if caplen > hdr.max_caplen:
        return f"captured length {caplen} is larger than the maximum of {hdr.max_caplen}"
    if wire_len < caplen:
        return f"original length {wire_len} is smaller than the captured length {caplen}"
    if wire_len > MAX_CAPLEN:
        return f"original length {wire_len} is larger than {MAX_CAPLEN}"
    if frac >= (1_000_000_000 if hdr.nanos else 1_000_000):
        unit = "nanoseconds" if hdr.nanos else "microseconds"
        return f"timestamp fraction {frac} is not a valid number of {unit}"
    return None


class _Walker:
    """Finds the complete records of one chunk buffer, starting at a known record header."""

    def __init__(self, hdr: PcapHeader) -> None:
        self.hdr = hdr
        self.unpack = struct.Struct(hdr.order + "IIII").unpack_from
        little = hdr.order == "<"
        # byte positions (within a record header) of the top bytes of its four fields
        self.sec_top, self.sec_second = (3, 2) if little else (0, 1)
        self.frac_top = 7 if little else 4
        self.cap_top = 11 if little else 8
        self.len_top = 15 if little else 12
        self.frac_top_max = 0x3B if hdr.nanos else 0  # 10**9 - 1 = 0x3B9AC9FF, 10**6 < 2**24

    def chain(self, buf: np.ndarray, n: int, start: int) -> tuple[np.ndarray, int]:
        """Header positions of the complete records from `start`, and where the chain ended.

        The end is where the first record that is incomplete in buf[:n] or damaged begins
        (== n when the chunk ends exactly at a record boundary).
        """
        pieces: list[np.ndarray] = []
        pos = start
        u32 = u32_view(buf, self.hdr.order)
        while True:
            run, pos = self._run(buf, u32, n, pos)
            if run.shape[0] == 0:
                break
            pieces.append(run)
        found = np.concatenate(pieces) if pieces else np.empty(0, np.int64)
        return found, pos

    def headers(self, buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, int]:
        """(n, 4) int64 header fields (sec, frac, caplen, len) of the records at `pos`, cut
        before the first implausible (damaged) header; and the length kept."""
        rows = np.lib.stride_tricks.sliding_window_view(buf, RECORD_HEADER_BYTES)[pos]
        fields = rows.view(self.hdr.order + "u4").astype(np.int64)
        frac, caplen, wire_len = fields[:, 1], fields[:, 2], fields[:, 3]
        frac_limit = 1_000_000_000 if self.hdr.nanos else 1_000_000
        bad = np.flatnonzero(
            (caplen > self.hdr.max_caplen)
            | (wire_len < caplen)
            | (wire_len > MAX_CAPLEN)
            | (frac >= frac_limit)
        )
        keep = int(bad[0]) if bad.shape[0] else pos.shape[0]
        return fields[:keep], keep

    def _run(self, buf: np.ndarray, u32: np.ndarray, n: int, start: int) -> tuple[np.ndarray, int]:
        """Follow the chain in bulk from `start` while records have the same top of ts_sec."""
        if start + RECORD_HEADER_BYTES > n:
            return np.empty(0, np.int64), start
        after = start + RECORD_HEADER_BYTES + int(u32[start + 8])
        if after > n:
            return np.empty(0, np.int64), start
        last = n - RECORD_HEADER_BYTES  # last position where a whole header fits
        top = buf[start + self.sec_top]
        cand = np.flatnonzero(buf[start + self.sec_top : last + self.sec_top + 1] == top)
        cand += start
        second = buf[start + self.sec_second]
        keep = (
            (buf[cand + self.cap_top] == 0)
            & (buf[cand + self.len_top] == 0)
            & (buf[cand + self.frac_top] <= self.frac_top_max)
            & ((buf[cand + self.sec_second] - second) <= 1)  # uint8: wraps below `second`
        )
        cand = cand[keep]
        if cand.shape[0] == 0 or cand[0] != start:  # an odd first record: step over it alone
            return np.array([start], np.int64), after
        nxt = cand + RECORD_HEADER_BYTES + u32[cand + 8]
        inside = nxt <= n
        cand, nxt = cand[inside], nxt[inside]
        breaks = np.flatnonzero(nxt[:-1] != cand[1:])
        out: list[np.ndarray] = []
        k, b = 0, 0
        while True:
            # records cand[k..j] follow each other; then the chain continues at nxt[j]
            while b < breaks.shape[0] and breaks[b] < k:
                b += 1
            j = int(breaks[b]) if b < breaks.shape[0] else cand.shape[0] - 1
            out.append(cand[k : j + 1])
            target = int(nxt[j])
            w = int(np.searchsorted(cand, target))
            if w >= cand.shape[0] or cand[w] != target:
                return np.concatenate(out), target
            k = w


def u32_view(buf: np.ndarray, order: str) -> np.ndarray:
    """Every (unaligned) 4-byte integer of buf: view[i] is the one starting at byte i."""
    dtype = np.dtype(order + "u4")
    return np.ndarray(shape=(buf.shape[0] - 3,), dtype=dtype, buffer=buf, strides=(1,))


def iter_batches(
    handle: Stream, hdr: PcapHeader, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[RecordBatch]:
    """Yield the records of a pcap file chunk by chunk (the file header already read)."""
    size = handle.seek(0, 2)
    reader = ChunkReader(handle, FILE_HEADER_BYTES, chunk_bytes)
    walker = _Walker(hdr)
    frame_no = 1
    reader.advance(0)
    while True:
        pos, end = walker.chain(reader.buf, reader.n, 0)
        fields, keep = walker.headers(reader.buf, pos)
        if keep < pos.shape[0]:
            pos, end = pos[:keep], int(pos[keep])
        batch = _batch(reader, hdr, pos, fields, frame_no)
        frame_no += batch.size
        error = _end_problem(reader, hdr, walker, end, size)
        if error is not None:
            batch.errors.append(
                RecordError(
                    error,
                    hex_head(reader.buf[end : min(reader.n, end + 32)]),
                    line=frame_no,
                    offset=reader.base + end,
                )
            )
            batch.records_read += 1
        if batch.records_read:
            yield batch
        if error is not None or (reader.eof and end >= reader.n):
            return
        need = RECORD_HEADER_BYTES
        if end + RECORD_HEADER_BYTES <= reader.n:
            need += walker.unpack(reader.view, end)[2]
        reader.advance(end, need)


def _batch(
    reader: ChunkReader, hdr: PcapHeader, pos: np.ndarray, fields: np.ndarray, frame_no: int
) -> RecordBatch:
    frac = fields[:, 1]
    ts_ns = fields[:, 0] * 1_000_000_000 + (frac if hdr.nanos else frac * 1000)
    n = pos.shape[0]
    return RecordBatch(
        buf=reader.buf,
        data_off=pos + RECORD_HEADER_BYTES,
        caplen=fields[:, 2],
        wire_len=fields[:, 3],
        ts_ns=ts_ns,
        link_type=np.full(n, hdr.link_type, np.int32),
        iface_id=np.zeros(n, np.int32),
        first_frame_no=frame_no,
        records_read=n,
    )


def _end_problem(
    reader: ChunkReader, hdr: PcapHeader, walker: _Walker, end: int, size: int
) -> str | None:
    """Why the chain stopped at `end` if that is an error (damaged or cut-off record)."""
    n = reader.n
    if end + RECORD_HEADER_BYTES <= n:
        _, frac, caplen, wire_len = walker.unpack(reader.view, end)
        problem = header_problem(hdr, frac, caplen, wire_len)
        if problem is not None:
            left = size - reader.base - end
            return f"damaged record header: {problem}; reading stopped, {left} bytes not read"
        if reader.eof:  # plausible but incomplete at the end of the file
            got = n - end - RECORD_HEADER_BYTES
            return f"file cut off inside a record: {got} of {caplen} captured bytes present"
        return None
    if reader.eof and end < n:
        return f"file cut off inside a record header: {n - end} of 16 bytes present"
    return None

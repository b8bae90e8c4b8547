"""What the capture readers hand to the decoders: a buffer and the located records in it.

The readers (pcap_framing for classic pcap, pcapng for pcapng) only find record boundaries and
header fields; the decoders (pcap_fast, pcap_dpkt) turn packet bytes into columns. A batch's
``buf`` is reused for the next chunk, so it must be decoded before the next batch is requested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .records import RecordError

PAD_BYTES = 256
"""Zero bytes after the data of every chunk buffer: fixed-size header windows never run off it."""

CHUNK_BYTES = 4 * 1024 * 1024
"""Bytes read per chunk (records are never split: a partial record is carried to the next).

About 35,000 short packets: large enough that per-call overheads vanish, small enough that the
column temporaries of a chunk stay cheap (measured: 2-8 MiB are equally fast, 32 MiB slower)."""

MAX_CAPLEN = 16 * 1024 * 1024
"""Largest captured length accepted in a record header; larger means the header is damaged."""

HEX_BYTES = 32
"""How many leading bytes of a bad record go into the error's `raw` (as hex)."""

TS_MISSING = np.iinfo(np.int64).min
"""ts_ns of a packet without a timestamp (pcapng Simple Packet Block)."""

# LINKTYPE_* values (https://www.tcpdump.org/linktypes.html) and the names stored in link_type.
LINK_NULL = 0
LINK_ETHERNET = 1
LINK_RAW_12 = 12
LINK_RAW_14 = 14
LINK_RAW = 101
LINK_LOOP = 108
LINK_SLL = 113
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_SLL2 = 276

LINK_NAMES: dict[int, str] = {
    LINK_NULL: "null",
    LINK_ETHERNET: "ethernet",
    LINK_RAW_12: "raw",
    LINK_RAW_14: "raw",
    LINK_RAW: "raw",
    LINK_LOOP: "loop",
    LINK_SLL: "sll",
    LINK_IPV4: "ipv4",
    LINK_IPV6: "ipv6",
    LINK_SLL2: "sll2",
}
RAW_LINKS = frozenset({LINK_RAW_12, LINK_RAW_14, LINK_RAW, LINK_IPV4, LINK_IPV6})


class Stream(Protocol):
    """What the readers need of an open capture file (a file object or io.BytesIO)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readinto(self, buffer: Any, /) -> int | None: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


def link_name(link_type: int) -> str:
    """The link_type column's text: a DLT name, or `linktype_<n>` for ones we do not decode."""
    return LINK_NAMES.get(link_type, f"linktype_{link_type}")


def hex_head(data: bytes | bytearray | memoryview | np.ndarray) -> str:
    """The first HEX_BYTES bytes as hex (the `raw` of a binary record error)."""
    return bytes(data[:HEX_BYTES]).hex()


@dataclass
class RecordBatch:
    """Complete packet records found in one chunk of a capture file.

    Offsets index ``buf``; arrays have one entry per packet, in file order. ``first_frame_no`` is
    the 1-based number of the first packet (Wireshark's frame.number). ``records_read`` counts
    packets plus rejected records seen in this chunk.
    """

    buf: np.ndarray
    data_off: np.ndarray
    caplen: np.ndarray
    wire_len: np.ndarray
    ts_ns: np.ndarray
    link_type: np.ndarray
    iface_id: np.ndarray
    first_frame_no: int
    iface_names: dict[int, str] = field(default_factory=dict)
    is_pcapng: bool = False
    errors: list[RecordError] = field(default_factory=list)
    records_read: int = 0

    @property
    def size(self) -> int:
        return int(self.data_off.shape[0])

    def packet(self, i: int) -> bytes:
        """The captured bytes of packet i (for the per-packet slow path)."""
        start = int(self.data_off[i])
        return self.buf[start : start + int(self.caplen[i])].tobytes()


class ChunkReader:
    """Reads a file in large chunks into one reused buffer, carrying a partial record over.

    ``buf[:n]`` holds the file bytes from offset ``base``; PAD_BYTES zero bytes follow them.
    """

    def __init__(self, handle: Stream, start: int, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.handle = handle
        self.chunk_bytes = chunk_bytes
        self.buf = np.zeros(chunk_bytes + PAD_BYTES, np.uint8)
        self.view = memoryview(self.buf.data)  # for struct.unpack_from
        self.base = start
        self.n = 0
        self.eof = False
        handle.seek(start)

    def advance(self, consumed: int, need: int = 0) -> None:
        """Drop the first `consumed` bytes and read more; room for `need` bytes is made."""
        rest = self.n - consumed
        if need > self.buf.shape[0] - PAD_BYTES:
            grown = np.zeros(need + PAD_BYTES, np.uint8)
            grown[:rest] = self.buf[consumed : self.n]
            self.buf = grown
            self.view = memoryview(self.buf.data)
        elif rest > 0 and consumed > 0:
            self.buf[:rest] = self.buf[consumed : self.n].copy()
        self.base += consumed
        self.n = rest
        limit = self.buf.shape[0] - PAD_BYTES
        while not self.eof and self.n < limit:
            got = self.handle.readinto(self.view[self.n : limit])
            if not got:
                self.eof = True
                break
            self.n += got
        self.buf[self.n : self.n + PAD_BYTES] = 0

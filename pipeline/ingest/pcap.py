"""pcap/pcapng captures -> raw_packets, chunk by chunk, at close to the speed of reading the file.

``read_capture(path)`` yields one ParsedChunk per chunk of the file (CHUNK_BYTES of input), so the
loader can insert each into DuckDB and memory stays bounded whatever the file size. Record
boundaries come from pcap_framing / pcapng; the packets of each chunk are decoded in bulk by
pcap_fast (numpy), which hands the packets it does not cover to pcap_dpkt one by one.

Records: every packet record is a record. A record cut off by the end of the file, or a damaged
record header (reading stops there), is a rejected record with its byte offset, and `line` set to
the frame number the record would have had. Inner packets of tunnels are extra rows of their
frame, not extra records. A frame whose contents are malformed is still a parsed record: a row
with the fields that could be read (Wireshark's "[Malformed Packet]" frames are frames too).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import pcap_app, pcap_columns, pcap_dpkt, pcap_fast, pcap_framing, pcapng
from .blocks import open_input
from .pcap_batch import CHUNK_BYTES, RecordBatch, Stream
from .records import ParsedChunk

KINDS = ("pcap", "pcapng")
ENGINES = ("fast", "pyshark")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def read_capture(
    path: Path,
    *,
    engine: str = "fast",
    slow_only: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[ParsedChunk]:
    """Yield the raw_packets and raw_app_messages rows and record errors of a capture file,
    chunk by chunk.

    Raises InputError when the file is not a pcap/pcapng at all (bad magic, short file header).
    ``engine`` is "fast" (this module's decoders) or "pyshark" (Wireshark's dissectors through
    pcap_pyshark; slow, for cross-checks); ``slow_only`` decodes every packet with the
    per-packet dpkt path (for cross-checks).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "pyshark":
        from . import pcap_pyshark  # imports pyshark, which is slow to load

        yield from pcap_pyshark.read_capture(path)
        return
    try:
        handle = open_input(path)
    except OSError as exc:
        raise InputError(str(path), f"cannot read file: {exc.strerror or exc}") from exc
    with handle:
        yield from read_stream(handle, str(path), slow_only=slow_only, chunk_bytes=chunk_bytes)


def read_stream(
    handle: Stream, name: str, *, slow_only: bool = False, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[ParsedChunk]:
    """read_capture on an open binary file (seekable); `name` is used in messages."""
    head = handle.read(pcap_framing.FILE_HEADER_BYTES)
    if head[:4] == PCAPNG_MAGIC:
        pcapng.check_start(head, name)
        batches = pcapng.iter_batches(handle, chunk_bytes)
    else:
        header = pcap_framing.read_header(head, name)
        batches = pcap_framing.iter_batches(handle, header, chunk_bytes)
    for batch in batches:
        yield decode_batch(batch, slow_only=slow_only)


def decode_batch(batch: RecordBatch, *, slow_only: bool = False) -> ParsedChunk:
    """Decode the packets of one batch into a raw_packets frame."""
    if slow_only:
        fast, slow = pcap_columns.empty(0), np.arange(batch.size)
    else:
        fast, slow = pcap_fast.decode(batch)
    rows = []
    for i in slow.tolist():
        for row in pcap_dpkt.decode(
            batch.packet(i), int(batch.wire_len[i]), int(batch.link_type[i])
        ):
            row["packet"] = i
            rows.append(row)
    cols = pcap_columns.concat([fast, pcap_columns.from_rows(rows)])
    if rows and fast["packet"].shape[0]:
        order = np.argsort(cols["packet"], kind="stable")
        cols = {name: values[order] for name, values in cols.items()}
    packets = pcap_columns.to_frame(cols, batch)
    chunk = ParsedChunk(
        frames={
            "raw_packets": packets,
            "raw_app_messages": pcap_app.app_frame(batch, cols, packets),
        },
        errors=list(batch.errors),
        records_read=batch.records_read,
        records_parsed=batch.size,
    )
    return chunk

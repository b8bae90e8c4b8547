"""Cut-off and damaged captures keep every complete record and report the bad one, located."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from pipeline.analyze import load_file
from pipeline.bundle import discover
from pipeline.db import connect
from pipeline.errors import InputError
from pipeline.ingest.pcap import read_capture
from pipeline.ingest.records import RecordError
from tests.ingest.pcap_cases import FIXTURES, read_all


def _record_offsets(path: Path) -> list[int]:
    """Record offsets of an intact little-endian pcap, walked independently of natlens."""
    data = path.read_bytes()
    offsets, pos = [], 24
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return offsets


def _errors(path: Path) -> tuple[list[RecordError], int, int]:
    chunks = list(read_capture(path))
    for chunk in chunks:
        chunk.check_counts()
    errors = [e for c in chunks for e in c.errors]
    return errors, sum(c.records_read for c in chunks), sum(c.records_parsed for c in chunks)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cut_record.pcap", "file cut off inside a record: 10 of "),
        ("cut_header.pcap", "file cut off inside a record header: 7 of 16 bytes present"),
    ],
)
def test_a_cut_final_record_is_one_rejected_record(name: str, reason: str) -> None:
    offsets = _record_offsets(FIXTURES / "veth_eth.pcap")
    errors, read, parsed = _errors(FIXTURES / name)
    assert (read, parsed) == (len(offsets), len(offsets) - 1)
    [error] = errors
    assert error.is_rejection and error.reason.startswith(reason)
    assert error.offset == offsets[-1] and error.line == len(offsets)
    assert error.raw == (FIXTURES / name).read_bytes()[offsets[-1] : offsets[-1] + 32].hex()
    whole, _ = read_all(FIXTURES / "veth_eth.pcap")
    cut, _ = read_all(FIXTURES / name)
    assert_frame_equal(cut, whole.filter(whole["frame_no"] < len(offsets)))


def test_a_damaged_record_header_stops_reading_there() -> None:
    offsets = _record_offsets(FIXTURES / "veth_eth.pcap")
    errors, read, parsed = _errors(FIXTURES / "damaged_header.pcap")
    assert (read, parsed) == (41, 40)
    [error] = errors
    assert error.offset == offsets[40] and error.line == 41
    assert error.reason.startswith("damaged record header: captured length 2147483647")
    size = (FIXTURES / "damaged_header.pcap").stat().st_size
    assert error.reason.endswith(f"reading stopped, {size - offsets[40]} bytes not read")
    whole, _ = read_all(FIXTURES / "veth_eth.pcap")
    damaged, _ = read_all(FIXTURES / "damaged_header.pcap")
    assert_frame_equal(damaged, whole.filter(whole["frame_no"] <= 40))


def _block_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, type) of each block of an intact little-endian pcapng."""
    data = path.read_bytes()
    blocks, pos = [], 0
    while pos < len(data):
        btype, length = struct.unpack_from("<II", data, pos)
        blocks.append((pos, btype))
        pos += length
    return blocks


def test_a_cut_pcapng_block_is_one_rejected_record() -> None:
    cut_at = (FIXTURES / "cut_block.pcapng").stat().st_size
    blocks = _block_offsets(FIXTURES / "dumpcap_multi.pcapng")
    cut_block = max(pos for pos, _ in blocks if pos < cut_at)
    packets_before = sum(1 for pos, btype in blocks if pos < cut_block and btype == 6)
    errors, read, parsed = _errors(FIXTURES / "cut_block.pcapng")
    assert (read, parsed) == (packets_before + 1, packets_before)
    [error] = errors
    assert error.offset == cut_block and error.line == packets_before + 1
    assert error.reason.startswith("file cut off inside a block of type 0x00000006")


def test_a_damaged_pcapng_block_stops_reading_there() -> None:
    intact = _block_offsets(FIXTURES / "dumpcap_multi.pcapng")
    target = intact[len(intact) // 3][0]  # the block derive.py damaged
    packets_before = sum(1 for pos, btype in intact if pos < target and btype == 6)
    errors, read, parsed = _errors(FIXTURES / "damaged_block.pcapng")
    assert (read, parsed) == (packets_before + 1, packets_before)
    [error] = errors
    assert error.offset == target
    assert "trailing length 16777216 differ; reading stopped" in error.reason


def test_unknown_pcapng_blocks_are_skipped_and_counted() -> None:
    errors, read, parsed = _errors(FIXTURES / "mixed_links.pcapng")
    assert read == parsed == 3 * 61 + 1  # three inputs of 61 packets, plus the SPB
    [warning] = errors
    assert not warning.is_rejection
    assert warning.reason == "1 pcapng block(s) of unknown type 0x00000f0f skipped"


def test_a_capture_without_packets_has_no_records() -> None:
    assert _errors(FIXTURES / "header_only.pcap") == ([], 0, 0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xd4\xc3\xb2\xa1\x02\x00", "file ends inside the pcap file header (6 of 24 bytes)"),
        (b"GET / HTTP/1.1\r\n" * 3, "not a pcap file (magic 47455420)"),
        (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x00\x00\x00\x00" + bytes(16), "bad pcapng byte-order"),
    ],
)
def test_a_file_that_is_no_capture_raises_input_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(read_capture(path))


def test_the_loader_stores_packets_and_the_located_error(tmp_path: Path) -> None:
    con = connect(tmp_path / "t.duckdb")
    [f] = discover([FIXTURES / "cut_record.pcap"], bundle_id="b")
    outcome = load_file(con, f)
    assert (outcome.records_read, outcome.records_parsed, outcome.records_rejected) == (145, 144, 1)
    offsets = _record_offsets(FIXTURES / "veth_eth.pcap")
    row = con.execute("select byte_offset, source_line from raw_ingest_errors").fetchall()
    assert row == [(offsets[-1], 145)]
    frames = con.execute("select count(distinct frame_no) from raw_packets").fetchone()
    assert frames == (144,)

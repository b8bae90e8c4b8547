"""The vectorised path and the per-packet dpkt path agree, and chunking changes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from polars.testing import assert_frame_equal

from pipeline.ingest import pcap_fast, pcap_framing
from pipeline.ingest.pcap_columns import flags_text
from tests.ingest.pcap_cases import ALL_FILES, FIXTURES, case_id, read_all


@pytest.mark.parametrize("path", ALL_FILES, ids=case_id)
def test_fast_path_rows_equal_dpkt_rows(path: Path) -> None:
    fast, fast_chunks = read_all(path)
    slow, slow_chunks = read_all(path, slow_only=True)
    assert_frame_equal(fast, slow)
    assert [c.errors for c in fast_chunks] == [c.errors for c in slow_chunks]


@pytest.mark.parametrize(
    ("name", "share"),
    [("veth_eth.pcap", 0.35), ("any_sll2.pcap", 0.5), ("raw_101.pcap", 0.35), ("ipv4.pcap", 0.9)],
)
def test_fast_path_takes_the_common_packets(name: str, share: float) -> None:
    """Guards the comparison above against a fast path that quietly hands everything over."""
    path = next(FIXTURES.rglob(name))
    with path.open("rb") as handle:
        header = pcap_framing.read_header(handle.read(24), str(path))
        batch = next(pcap_framing.iter_batches(handle, header))
    cols, slow = pcap_fast.decode(batch)
    assert cols["packet"].shape[0] + slow.shape[0] == batch.size
    assert cols["packet"].shape[0] >= share * batch.size
    assert np.intersect1d(cols["packet"], slow).shape[0] == 0


@pytest.mark.parametrize(
    "name", ["veth_eth.pcap", "mixed_links.pcapng", "cut_record.pcap", "damaged_block.pcapng"]
)
@pytest.mark.parametrize("chunk_bytes", [64, 1000, 4096])
def test_small_chunks_give_the_same_result(name: str, chunk_bytes: int) -> None:
    """Records spanning chunk ends are carried over; a chunk smaller than a record grows."""
    path = next(FIXTURES.rglob(name))
    whole, whole_chunks = read_all(path)
    small, small_chunks = read_all(path, chunk_bytes=chunk_bytes)
    assert len(small_chunks) > len(whole_chunks)
    assert_frame_equal(whole, small)
    errors = [e for c in whole_chunks for e in c.errors]
    assert errors == [e for c in small_chunks for e in c.errors]
    assert sum(c.records_read for c in small_chunks) == sum(c.records_read for c in whole_chunks)


def test_tcp_flag_letters_follow_the_documented_order() -> None:
    assert flags_text(0x02) == "S"
    assert flags_text(0x12) == "SA"
    assert flags_text(0x11) == "FA"
    assert flags_text(0x18) == "PA"
    assert flags_text(0x04) == "R"
    assert flags_text(0x14) == "RA"
    assert flags_text(0xC2) == "SEC"
    assert flags_text(0) == ""

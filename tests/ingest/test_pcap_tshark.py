"""Per-packet fields equal Wireshark's on every capture: the fixtures, the Zeek traces, the labs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingest.pcap_cases import ALL_FILES, case_id, read_all
from tests.ingest.pcap_oracle import compare, have_tshark, tshark_fields

pytestmark = pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")


@pytest.mark.parametrize("path", ALL_FILES, ids=case_id)
def test_fields_equal_tsharks(path: Path) -> None:
    frame, chunks = read_all(path)
    oracle = tshark_fields(path)
    assert sum(c.records_parsed for c in chunks) == len(oracle), "packet count differs"
    problems = compare(frame, oracle)
    assert not problems, "\n".join(problems[:40])


def test_the_oracle_notices_a_wrong_value() -> None:
    path = next(p for p in ALL_FILES if p.name == "veth_eth.pcap")
    frame, _ = read_all(path)
    wrong = frame.with_columns(frame["seq"] + 1)
    problems = compare(wrong, tshark_fields(path))
    assert problems and all(" seq: " in p for p in problems)

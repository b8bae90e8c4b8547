"""Text inputs are parsed in blocks of whole records: the rows equal a whole-file parse."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.analyze import LoadOptions, load_all
from pipeline.bundle import discover, sniff
from pipeline.db import connect
from pipeline.ingest import blocks
from pipeline.ingest.blocks import MAX_LINE_BYTES, iter_blocks, parse_blocks
from pipeline.ingest.records import ParsedChunk

CONNTRACK_LINE = (
    "ipv4     2 tcp      6 86395 ESTABLISHED src=10.0.0.1 dst=10.96.0.10 sport=40000 dport=80 "
    "src=10.244.1.5 dst=10.0.0.1 sport=8080 dport=40000 [ASSURED] mark=0 use=2\n"
)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# Every fixture of a family that can be cut into blocks (conntrack, ipset). iptables-save is
# not cut: a file's address family is learnt from any of its tables and applies to all.
CUTTABLE = sorted(p for family in ("conntrack", "ipset") for p in (FIXTURES / family).glob("*.txt"))


def _whole(path: Path) -> tuple[ParsedChunk, str]:
    data = path.read_bytes()
    sniffed = sniff(path, data)
    assert sniffed.ingestor is not None and sniffed.kind is not None
    return sniffed.ingestor.parse(blocks.decode_text(data), sniffed.kind), sniffed.kind


def _merged(chunks: list[ParsedChunk]) -> dict[str, pl.DataFrame]:
    names = sorted({n for c in chunks for n in c.frames})
    return {
        n: pl.concat([c.frames[n] for c in chunks if n in c.frames], how="vertical_relaxed")
        for n in names
    }


@pytest.mark.parametrize("path", CUTTABLE, ids=lambda p: f"{p.parent.name}/{p.name}")
@settings(max_examples=8, deadline=None)
@given(block_bytes=st.integers(min_value=1, max_value=4096))
def test_blocks_give_the_rows_of_the_whole_file(path: Path, block_bytes: int) -> None:
    whole, kind = _whole(path)
    sniffed = sniff(path, path.read_bytes())
    assert sniffed.ingestor is not None
    original = blocks.BLOCK_BYTES
    blocks.BLOCK_BYTES = block_bytes
    try:
        chunks = list(parse_blocks(path, sniffed.ingestor, kind))
    finally:
        blocks.BLOCK_BYTES = original
    merged = _merged(chunks)
    for name, frame in whole.frames.items():
        if frame.height:
            assert merged[name].equals(frame), name
    assert sum(c.records_read for c in chunks) == whole.records_read
    assert sum(c.records_parsed for c in chunks) == whole.records_parsed
    assert sorted((e.line, e.reason) for c in chunks for e in c.errors) == sorted(
        (e.line, e.reason) for e in whole.errors
    )


def test_a_cuttable_file_is_read_in_several_blocks(tmp_path: Path) -> None:
    line = "ipv4 2 tcp 6 86395 ESTABLISHED src=10.0.0.{a} dst=10.96.0.10 sport={p} dport=80 "
    line += "src=10.244.1.5 dst=10.0.0.{a} sport=8080 dport={p} [ASSURED] mark=0 use=1\n"
    rng = random.Random(3)
    path = tmp_path / "conntrack.txt"
    path.write_text(
        "".join(
            line.format(a=rng.randrange(1, 250), p=rng.randrange(1024, 65535)) for _ in range(3000)
        )  # fmt: skip
    )
    sniffed = sniff(path, path.read_bytes())
    assert sniffed.ingestor is not None and sniffed.kind is not None
    starts = blocks.block_start_of(sniffed.ingestor, sniffed.kind)
    found = list(iter_blocks(path, starts, block_bytes=64 * 1024))
    assert len(found) > 3
    assert [b.first_line for b in found] == sorted({b.first_line for b in found})
    assert sum(b.text.count("\n") for b in found) == 3000


def test_a_line_longer_than_any_record_is_one_rejection_and_never_held(tmp_path: Path) -> None:
    path = tmp_path / "iptables.txt"  # a format that is never cut: still never held
    huge = "x" * (3 * MAX_LINE_BYTES)
    path.write_text(f"*nat\n:PREROUTING ACCEPT [0:0]\n{huge}\n-A PREROUTING -j ACCEPT\nCOMMIT\n")
    found = list(iter_blocks(path, None))
    assert len(found) == 1
    [error] = found[0].long_lines
    assert error.line == 3
    assert f"line of {len(huge)} characters" in error.reason
    assert len(error.raw) < 4200
    assert found[0].text.splitlines()[2] == ""  # the parser sees an empty line 3
    assert found[0].text.splitlines()[3] == "-A PREROUTING -j ACCEPT"


def test_inputs_are_opened_without_following_a_link_or_blocking_on_a_fifo(tmp_path: Path) -> None:
    """What the bundle walk skips is also refused at open time (the entry may be swapped)."""
    real = tmp_path / "conntrack.txt"
    real.write_text("secret\n")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    with blocks.open_input(real) as handle:
        assert handle.read() == b"secret\n"
    with pytest.raises(OSError) as followed:
        blocks.open_input(link)
    assert followed.value.errno == errno.ELOOP
    with pytest.raises(OSError, match="not a regular file"):
        blocks.open_input(fifo)  # returns at once: no writer is waited for


def test_a_file_swapped_for_a_link_after_discovery_fails_alone(tmp_path: Path) -> None:
    """The walk saw a regular file; by the load it is a link to a file outside the bundle."""
    outside = tmp_path / "shadow"
    outside.write_text("root:$6$secret:19000:0:99999:7:::\n")
    node = tmp_path / "b" / "w1"
    node.mkdir(parents=True)
    victim = node / "conntrack.txt"
    victim.write_text(CONNTRACK_LINE)
    (node / "other.txt").write_text(CONNTRACK_LINE)
    files = discover([tmp_path / "b"])
    victim.unlink()
    victim.symlink_to(outside)
    con = connect(tmp_path / "n.duckdb")
    try:
        loaded = load_all(con, files, options=LoadOptions(jobs=1), bundle_ids={"b"})
        outcomes = {o.file.source_file: o for o in loaded}
        assert outcomes["b/w1/conntrack.txt"].status == "failed"
        assert "symbolic links" in str(outcomes["b/w1/conntrack.txt"].reason)
        assert outcomes["b/w1/other.txt"].status == "loaded"
        raw = con.execute("select string_agg(raw, '') from raw_ingest_errors").fetchone()
        assert "secret" not in str(raw)
        assert con.execute("select count(*) from raw_conntrack_entries").fetchone() == (1,)
    finally:
        con.close()

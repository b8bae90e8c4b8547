"""A rejected record keeps at most MAX_RAW_CHARS of its raw text, and says how long it was."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import duckdb
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.ingest.records import MAX_RAW_CHARS, RecordError

CONNTRACK = (
    "tcp      6 83 TIME_WAIT src=172.18.0.6 dst=172.18.0.5 sport={port} dport=30001 "
    "src=10.10.1.2 dst=172.18.0.5 sport=80 dport=29038 [ASSURED] mark=0 use=1\n"
)


def test_raw_up_to_the_limit_is_kept_whole() -> None:
    raw = "x" * MAX_RAW_CHARS
    assert RecordError("bad", raw).raw == raw


def test_longer_raw_is_cut_and_says_its_length() -> None:
    error = RecordError("bad", "y" * (MAX_RAW_CHARS + 1), line=7)
    assert error.raw == "y" * MAX_RAW_CHARS + f"… [truncated, {MAX_RAW_CHARS + 1} chars]"
    assert (error.reason, error.line) == ("bad", 7)
    # a copy with another field is not cut again (the marker keeps the original length)
    assert dataclasses.replace(error, line=8).raw == error.raw


@given(raw=st.text(alphabet="ab…[] ,0123456789", max_size=3 * MAX_RAW_CHARS))
def test_any_raw_is_bounded_and_keeps_its_start(raw: str) -> None:
    stored = RecordError("bad", raw).raw
    if len(raw) <= MAX_RAW_CHARS:
        assert stored == raw
    else:
        assert stored == raw[:MAX_RAW_CHARS] + f"… [truncated, {len(raw)} chars]"


def test_a_5_mb_garbage_line_is_stored_as_4_kb(tmp_path: Path) -> None:
    """A real conntrack file with one 5 MiB line of garbage, loaded by the command."""
    size = 5 * 2**20
    rng = random.Random(15)
    garbage = "q" + "".join(rng.choices("abcxyz 0123456789", k=size - 2)) + "q"
    node = tmp_path / "b" / "worker"
    node.mkdir(parents=True)
    text = CONNTRACK.format(port=1001) + garbage + "\n" + CONNTRACK.format(port=1002)
    (node / "conntrack.txt").write_text(text)
    db = tmp_path / "n.duckdb"
    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "b"), "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    assert "conntrack.txt: conntrack: read 3 = parsed 2 + rejected 1" in result.stderr
    con = duckdb.connect(str(db), read_only=True)
    [(line, raw)] = con.execute("select source_line, raw from raw_ingest_errors").fetchall()
    ports = con.execute("select orig_sport from raw_conntrack_entries order by 1").fetchall()
    con.close()
    assert line == 2
    assert len(raw.encode()) <= 4200
    assert raw == garbage[:MAX_RAW_CHARS] + f"… [truncated, {size} chars]"
    assert ports == [(1001,), (1002,)]

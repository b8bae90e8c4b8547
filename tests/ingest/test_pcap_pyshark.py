"""`--engine pyshark`: Wireshark's dissectors give the same packets and messages as the fast one."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.ingest.pcap import read_capture

ROOT = Path(__file__).resolve().parents[2]
SMALL_LAB_PCAP = ROOT / "captures/lab-iptables/myk8s-worker3/vethdf053147.pcap"
CONTRACT = (
    "frame_no",
    "ts",
    "src_ip",
    "dst_ip",
    "proto",
    "src_port",
    "dst_port",
    "tcp_flags",
    "seq",
    "ack",
    "window",
    "ip_id",
    "ttl",
    "ip_len",
    "payload_len",
    "frame_len",
    "caplen",
)
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def frames(path: Path, engine: str, table: str) -> pl.DataFrame:
    return pl.concat([c.frames[table] for c in read_capture(path, engine=engine)])


@pytest.fixture(scope="module")
def pyshark_chunks() -> list:  # type: ignore[type-arg]
    return list(read_capture(SMALL_LAB_PCAP, engine="pyshark"))


def test_contract_columns_equal_the_fast_engine(pyshark_chunks: list) -> None:  # type: ignore[type-arg]
    slow = pl.concat([c.frames["raw_packets"] for c in pyshark_chunks]).select(CONTRACT)
    fast = frames(SMALL_LAB_PCAP, "fast", "raw_packets").filter(pl.col("encap_depth") == 0)
    assert slow.height == fast.height > 300
    assert slow.equals(fast.select(CONTRACT))
    for chunk in pyshark_chunks:
        chunk.check_counts()


def test_app_messages_equal_the_fast_engine(pyshark_chunks: list) -> None:  # type: ignore[type-arg]
    slow = pl.concat([c.frames["raw_app_messages"] for c in pyshark_chunks])
    fast = frames(SMALL_LAB_PCAP, "fast", "raw_app_messages")
    assert slow.height == fast.height > 80
    assert slow.equals(fast)


def test_cli_engine_pyshark_loads_and_records_the_engine(tmp_path: Path) -> None:
    bundle = tmp_path / "tiny" / "node1"
    bundle.mkdir(parents=True)
    shutil.copy(SMALL_LAB_PCAP, bundle / "veth.pcap")
    db = tmp_path / "t.duckdb"
    runner = CliRunner()
    args = ["analyze", str(tmp_path / "tiny"), "--db", str(db), "-q"]
    result = runner.invoke(app, [*args, "--engine", "pyshark"])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select engine from raw_ingest_files").fetchall() == [("pyshark",)]
        counts = con.execute("select kind, count(*) from app_messages group by kind").fetchall()
    assert dict(counts)["http_response"] == 37  # one per request on this veth
    again = runner.invoke(app, [*args, "--engine", "fast"])  # another engine: loaded again
    assert again.exit_code == 0, again.output
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select engine from raw_ingest_files").fetchall() == [("fast",)]
    bad = runner.invoke(app, [*args, "--engine", "nope"])
    assert bad.exit_code == 2

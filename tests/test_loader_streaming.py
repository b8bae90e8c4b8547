"""Captures stream into DuckDB in committed batches, and a load cut short is redone, not kept."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pipeline import loader
from pipeline.bundle import discover
from pipeline.db import connect
from pipeline.ingest.pcap import read_capture
from pipeline.prefetch import prefetch
from pipeline.schemas import RAW_PACKETS

REPO = Path(__file__).resolve().parent.parent
PCAP = REPO / "captures" / "lab-iptables" / "myk8s-worker" / "any.pcap"


def _count(con: object, sql: str) -> int:
    row = con.execute(sql).fetchone()  # type: ignore[attr-defined]
    assert row is not None
    return int(row[0])


def test_prefetch_yields_everything_in_order() -> None:
    assert list(prefetch(iter(range(1000)), depth=3)) == list(range(1000))


def test_prefetch_raises_the_producers_error_where_it_happened() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("record 3 is damaged")

    got: list[int] = []
    with pytest.raises(ValueError, match="record 3"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1, 2]


def test_prefetch_stops_its_thread_when_the_consumer_stops() -> None:
    before = threading.active_count()
    stream = prefetch(iter(range(10**9)), depth=2)
    assert next(stream) == 0
    stream.close()
    assert threading.active_count() == before


def test_batched_commits_keep_every_packet_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = sum(c.frames["raw_packets"].height for c in read_capture(PCAP, chunk_bytes=64 * 1024))
    assert want > 1000
    monkeypatch.setattr(loader, "COMMIT_ROWS", 300)  # many commits on a small file
    monkeypatch.setattr(
        loader,
        "_chunks",
        lambda f, kind, ingestor, engine="fast": read_capture(f.path, chunk_bytes=64 * 1024),
    )
    con = connect(tmp_path / "n.duckdb")
    [f] = discover([PCAP], node="myk8s-worker")
    outcome = loader.load_file(con, f)
    assert (outcome.status, outcome.records_parsed) == ("loaded", want)
    assert _count(con, "select count(*) from raw_packets") == want
    assert _count(con, "select count(distinct frame_no) from raw_packets") == want
    files = con.execute("select status, content_sha256 from raw_ingest_files").fetchall()
    assert files == [("loaded", loader.file_sha256(PCAP))]
    con.close()


def test_a_load_cut_short_is_listed_as_loading_and_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "COMMIT_ROWS", 300)

    def killed(f: object, kind: str, ingestor: object, engine: str = "fast") -> Iterator[object]:
        chunks = read_capture(PCAP, chunk_bytes=64 * 1024)
        yield next(chunks)
        yield next(chunks)
        raise KeyboardInterrupt  # what Ctrl-C or SIGINT does mid-file

    db = tmp_path / "n.duckdb"
    con = connect(db)
    [f] = discover([PCAP], node="myk8s-worker")
    with monkeypatch.context() as patched:
        patched.setattr(loader, "_chunks", killed)
        with pytest.raises(KeyboardInterrupt):
            loader.load_file(con, f)
    con.close()
    con = connect(db)
    partial = _count(con, "select count(*) from raw_packets")
    assert partial > 0  # committed batches stay ...
    status = con.execute("select status, content_sha256 from raw_ingest_files").fetchall()
    assert status == [("loading", None)]  # ... but the file is not taken as loaded
    outcome = loader.load_file(con, f)
    assert outcome.status == "loaded"
    assert _count(con, "select count(*) from raw_packets") == outcome.records_parsed > partial
    assert _count(con, "select count(*) from raw_ingest_files") == 1
    con.close()


def _memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    [(limit,)] = con.execute("select current_setting('memory_limit')").fetchall()
    return str(limit)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("18.8 GiB", 18.8 * 2**30), ("244.1 MiB", 244.1 * 2**20), ("600MB", 600e6), ("0 bytes", 0)],
)
def test_duckdb_sizes_are_read_in_bytes(text: str, expected: float) -> None:
    assert loader._setting_bytes(text) == pytest.approx(expected)


@pytest.mark.parametrize("limit", [None, "2GB", "100MB"])
def test_a_capture_streams_in_under_a_capped_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str | None
) -> None:
    """While a capture streams in, DuckDB's limit is at most the load cap (a lower one is kept);
    afterwards the limit in force before is back."""
    con = connect(tmp_path / "n.duckdb", memory_limit=limit)
    before = _memory_limit(con)
    seen: list[str] = []
    insert = loader._insert

    def watched_insert(con: duckdb.DuckDBPyConnection, schema: object, *args: object) -> None:
        if schema is RAW_PACKETS:
            seen.append(_memory_limit(con))
        insert(con, schema, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "_insert", watched_insert)
    [f] = discover([PCAP], node="myk8s-worker")
    outcome = loader.load_file(con, f)
    assert outcome.status == "loaded", outcome.reason
    capped = min(loader._setting_bytes(before) or 0, loader.LOAD_MEMORY_LIMIT_BYTES)
    assert seen
    assert [loader._setting_bytes(s) for s in seen] == [pytest.approx(capped, rel=1e-3)] * len(seen)
    assert _memory_limit(con) == before
    con.close()

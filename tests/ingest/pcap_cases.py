"""The capture files the pcap tests run over, and a helper to read one whole."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.ingest.pcap import read_capture
from pipeline.ingest.records import ParsedChunk

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "pcap"
CAPTURE_SUFFIXES = (".pcap", ".pcapng")


def _captures(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in CAPTURE_SUFFIXES and p.is_file())


FIXTURE_FILES = _captures(FIXTURES)
LAB_FILES = _captures(REPO / "captures")
ALL_FILES = FIXTURE_FILES + LAB_FILES


def case_id(path: Path) -> str:
    return str(path.relative_to(REPO))


def read_all(path: Path, **kwargs: object) -> tuple[pl.DataFrame, list[ParsedChunk]]:
    """Every chunk of a capture, and their raw_packets frames concatenated."""
    chunks = list(read_capture(path, **kwargs))  # type: ignore[arg-type]
    frames = [c.frames["raw_packets"] for c in chunks]
    if not frames:
        from pipeline.schemas import RAW_PACKETS

        return pl.DataFrame(schema=RAW_PACKETS.parser_schema()), chunks
    return pl.concat(frames), chunks

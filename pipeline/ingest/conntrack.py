"""conntrack ingestor (placeholder until implemented): recognises nothing."""

from __future__ import annotations

from pipeline.ingest.records import Detection, ParsedChunk

KINDS: tuple[str, ...] = ()


def detect(text: str) -> Detection | None:
    return None


def parse(text: str, kind: str) -> ParsedChunk:
    return ParsedChunk()

"""Every parser fixture under tests/fixtures/<source>/ against its expected files.

For an input `<case>.<ext>` (any name that is not `*.expected.*` and not SOURCES.md) the harness
recognises the kind by content, parses it and compares:
- `<case>.expected.meta.json`: kind, record counts and every error with its line;
- `<case>.expected.<raw_table>.csv`: the rows of each raw table the parser produced.
Regenerate with `pytest --update-golden` and review the diff line by line against the input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.bundle import decode_text, sniff
from pipeline.ingest.records import ParsedChunk
from tests.golden import check_or_update, chunk_meta, frame_to_csv

FIXTURES = Path(__file__).parent / "fixtures"
SKIP_NAMES = {"SOURCES.md", "README.md"}


def _cases() -> list[Path]:
    cases = []
    for path in sorted(FIXTURES.glob("*/*")):
        if path.name in SKIP_NAMES or ".expected." in path.name or not path.is_file():
            continue
        if path.parent.name in {"pcap", "bundles", "zeek"}:  # binary or golden-only fixtures
            continue
        cases.append(path)
    return cases


@pytest.mark.parametrize("case", _cases(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_parses_as_expected(case: Path, update_golden: bool) -> None:
    data = case.read_bytes()
    sniffed = sniff(case, data)
    stem = case.name.rsplit(".", 1)[0] if "." in case.name else case.name
    base = case.parent / stem
    if sniffed.ingestor is None:
        check_or_update(
            Path(f"{base}.expected.meta.json"),
            chunk_meta(None, _empty()),
            update_golden,
        )
        return
    assert sniffed.kind is not None
    chunk = sniffed.ingestor.parse(decode_text(data), sniffed.kind)
    chunk.check_counts()
    meta = chunk_meta(sniffed.kind, chunk)
    check_or_update(Path(f"{base}.expected.meta.json"), meta, update_golden)
    produced = {name for name, frame in chunk.frames.items() if frame.height > 0}
    for name in produced:
        check_or_update(
            Path(f"{base}.expected.{name}.csv"), frame_to_csv(chunk.frames[name]), update_golden
        )
    expected_tables = {
        p.name.split(".expected.", 1)[1].removesuffix(".csv")
        for p in case.parent.glob(f"{stem}.expected.raw_*.csv")
    }
    assert expected_tables == produced, "tables produced differ from the expected files"


def _empty() -> ParsedChunk:
    return ParsedChunk()

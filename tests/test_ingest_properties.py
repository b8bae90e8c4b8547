"""Property tests over every text ingestor: never raise, always account for every record."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.bundle import decode_text, sniff
from pipeline.ingest import TEXT_INGESTORS

FIXTURES = Path(__file__).parent / "fixtures"
KINDS = [(m, k) for m in TEXT_INGESTORS for k in m.KINDS]
FIXTURE_LINES = sorted(
    {
        line
        for path in FIXTURES.glob("*/*.txt")
        for line in decode_text(path.read_bytes()).splitlines()
        if line.strip()
    }
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _damage(line: str, cut: int, dup: int) -> str:
    """Copy-paste damage: cut the line, double a space run, add trailing blanks."""
    if not line:
        return line
    cut_at = cut % (len(line) + 1)
    damaged = line[:cut_at] if cut % 3 == 0 else line
    return damaged.replace(" ", "  ", dup % 2) + " " * (dup % 3)


@pytest.mark.parametrize("module,kind", KINDS, ids=[f"{m.__name__}:{k}" for m, k in KINDS])
@SETTINGS
@given(text=st.text(max_size=400))
def test_arbitrary_text_never_raises(module: object, kind: str, text: str) -> None:
    chunk = module.parse(text, kind)  # type: ignore[attr-defined]
    chunk.check_counts()


@pytest.mark.parametrize("module,kind", KINDS, ids=[f"{m.__name__}:{k}" for m, k in KINDS])
@SETTINGS
@given(
    picks=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6)),
        max_size=25,
    )
)
def test_damaged_real_lines_never_raise(
    module: object, kind: str, picks: list[tuple[int, int, int]]
) -> None:
    if not FIXTURE_LINES:
        pytest.skip("no fixtures yet")
    lines = [_damage(FIXTURE_LINES[i % len(FIXTURE_LINES)], c, d) for i, c, d in picks]
    chunk = module.parse("\n".join(lines), kind)  # type: ignore[attr-defined]
    chunk.check_counts()


@SETTINGS
@given(data=st.binary(max_size=600))
def test_sniff_never_raises_on_bytes(data: bytes) -> None:
    sniffed = sniff(Path("input"), data)
    assert sniffed.kind is not None or sniffed.reason

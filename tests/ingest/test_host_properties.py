"""Properties of the ip addr / ip route ingestor: it never raises, and every record is counted
(read = parsed + rejected) on arbitrary text and on damaged copies of the real fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest import host

HOST = Path(__file__).parent.parent / "fixtures" / "host"
SOURCES = sorted(
    p for p in HOST.iterdir() if p.suffix in (".txt", ".json") and ".expected." not in p.name
)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(text: str, kind: str) -> None:
    chunk = host.parse(text, kind)
    chunk.check_counts()
    for frame in chunk.frames.values():
        assert frame.height == 0 or frame["source_line"].min() >= 1
    detection = host.detect(text)
    assert detection is None or detection.kind in host.KINDS


@pytest.mark.parametrize("kind", host.KINDS)
@SETTINGS
@given(text=st.text(max_size=300))
def test_arbitrary_text(kind: str, text: str) -> None:
    _check(text, kind)


@pytest.mark.parametrize("kind", host.KINDS)
@SETTINGS
@given(text=st.text(alphabet='[]{}":,0123456789abcdefinet/ .\n-', max_size=200))
def test_json_like_text(kind: str, text: str) -> None:
    _check(text, kind)


def _mutate(text: str, ops: list[tuple[int, int, int]]) -> str:
    """Delete, duplicate or cut at random places (copy-paste damage)."""
    for op, where, length in ops:
        if not text:
            break
        at = where % len(text)
        if op == 0:
            text = text[:at] + text[at + length % 8 :]
        elif op == 1:
            text = text[:at] + text[at : at + length % 8] * 2 + text[at:]
        elif op == 2:
            text = text[:at]
        else:
            end = text.find("\n", at)
            text = text[:at] + ("\n" if end < 0 else text[end:])  # cut one line short
    return text


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 10**6), st.integers(0, 10**3)), max_size=6
    )
)
def test_mutated_fixtures(source: Path, ops: list[tuple[int, int, int]]) -> None:
    original = source.read_text()
    detection = host.detect(original)
    assert detection is not None
    _check(_mutate(original, ops), detection.kind)

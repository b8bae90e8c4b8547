"""Compare the rows that the text and the JSON form of one nft ruleset give.

nft 1.0.6's JSON leaves out a few things its text prints (checked on the kernel's own output):
table and chain comments, a netdev chain's device and the ``dynamic`` set flag. Those columns are
the only ones allowed to differ, and only as "the JSON has nothing there".
"""

from __future__ import annotations

from typing import Any

from pipeline.ingest import nft
from pipeline.ingest.records import ParsedChunk

JSON_OMITS = {
    "raw_nft_tables": {"comment"},
    "raw_nft_chains": {"comment", "device"},
    "raw_nft_sets": {"flags"},
}
LOCATION = {"format", "source_line"}


def parse(text: str, kind: str) -> ParsedChunk:
    chunk = nft.parse(text, kind)
    chunk.check_counts()
    return chunk


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    parts = ("family", "table_name", "chain", "name", "set_name", "kind", "position")
    return tuple(str(row.get(k)) for k in parts)


def differences(
    text_chunk: ParsedChunk, json_chunk: ParsedChunk, with_handles: bool = True
) -> list[str]:
    """Every difference between the two forms' rows, except what nft's JSON omits."""
    problems: list[str] = []
    for table, frame in text_chunk.frames.items():
        drop = LOCATION | (set() if with_handles else {"handle"})
        left = sorted((_strip(r, drop) for r in frame.to_dicts()), key=_key)
        right = sorted((_strip(r, drop) for r in json_chunk.frames[table].to_dicts()), key=_key)
        if len(left) != len(right):
            problems.append(f"{table}: {len(left)} text rows, {len(right)} JSON rows")
            continue
        for a, b in zip(left, right, strict=True):
            for col in a:
                if a[col] == b[col]:
                    continue
                if col in JSON_OMITS.get(table, set()) and _json_omits(col, a[col], b[col]):
                    continue
                problems.append(f"{table} {_key(a)} {col}: text {a[col]!r} != JSON {b[col]!r}")
    return problems


def _json_omits(col: str, text_value: Any, json_value: Any) -> bool:
    if col == "flags":  # nft 1.0.6 -j drops 'dynamic' only
        return [f for f in text_value or [] if f != "dynamic"] == (json_value or [])
    return json_value is None


def _strip(row: dict[str, Any], drop: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in drop}

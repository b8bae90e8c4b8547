"""Query results as text for a terminal or another tool: table, csv, tsv, json, jsonl, markdown.

A result arrives as its column names and batches of rows, so csv, tsv and jsonl stream any
number of rows; table and markdown (which need every width) and json (one array) hold them.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TextIO
from uuid import UUID

from .output import md_escape

ELLIPSIS = "…"
MIN_COLUMN_WIDTH = 20
HIDDEN_NAMES_SHOWN = 8


class Format(StrEnum):
    table = "table"
    csv = "csv"
    tsv = "tsv"
    json = "json"
    jsonl = "jsonl"
    markdown = "markdown"


def text(value: Any) -> str:
    """A value as DuckDB shows it: NULL as NULL, lists as [a, b], structs as {'k': v}."""
    if value is None:
        return "NULL"
    return _inner(value)


def _inner(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, bytes):
        return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_inner(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_inner(k)!s}: {_inner(v)}" for k, v in value.items()) + "}"
    return str(value)


def json_value(value: Any) -> Any:
    """A value as JSON: timestamps ISO 8601, decimals as numbers, NaN/Infinity as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (UUID, bytes)):
        return _inner(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


def _flat(value: Any) -> str:
    """A csv/tsv cell: NULL as the empty field, everything else as in the table."""
    return "" if value is None else _inner(value)


def _tsv_escape(cell: str) -> str:
    return cell.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _one_line(cell: str) -> str:
    return cell.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def write_result(
    out: TextIO,
    fmt: Format,
    columns: list[str],
    batches: Iterable[list[tuple[Any, ...]]],
    *,
    header: bool = True,
    width: int | None = None,
) -> int:
    """Write one result to `out`; returns the number of rows. `width` caps the table format."""
    if fmt in (Format.csv, Format.tsv):
        return _write_delimited(out, fmt, columns, batches, header)
    if fmt == Format.jsonl:
        count = 0
        for batch in batches:
            for row in batch:
                record = {c: json_value(v) for c, v in zip(columns, row, strict=True)}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        return count
    rows = [row for batch in batches for row in batch]
    if fmt == Format.json:
        records = [{c: json_value(v) for c, v in zip(columns, r, strict=True)} for r in rows]
        out.write(json.dumps(records, ensure_ascii=False, indent=1) + "\n")
    elif fmt == Format.markdown:
        out.write(_markdown(columns, rows, header))
    else:
        out.write(table(columns, rows, header=header, width=width))
    return len(rows)


def _write_delimited(
    out: TextIO,
    fmt: Format,
    columns: list[str],
    batches: Iterable[list[tuple[Any, ...]]],
    header: bool,
) -> int:
    count = 0
    if fmt == Format.csv:
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(columns)
        for batch in batches:
            writer.writerows([_flat(v) for v in row] for row in batch)
            count += len(batch)
        return count
    if header:
        out.write("\t".join(_tsv_escape(c) for c in columns) + "\n")
    for batch in batches:
        for row in batch:
            out.write("\t".join(_tsv_escape(_flat(v)) for v in row) + "\n")
        count += len(batch)
    return count


def _markdown(columns: list[str], rows: list[tuple[Any, ...]], header: bool) -> str:
    lines = []
    if header:
        lines.append("| " + " | ".join(md_escape(c) for c in columns) + " |")
        lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(md_escape(_flat(v)) for v in row) + " |")
    return "\n".join(lines) + "\n" if lines else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _fit(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: max(width - 1, 0)] + ELLIPSIS


def _widths(natural: list[int], minimum: list[int], width: int | None) -> list[int]:
    """Column widths whose table (two spaces between columns) fits `width`: the widest column
    gives a character at a time, never below its minimum."""
    widths = list(natural)
    if width is None:
        return widths
    while sum(widths) + 2 * (len(widths) - 1) > width:
        shrinkable = [i for i, w in enumerate(widths) if w > minimum[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def table(
    columns: list[str],
    rows: list[tuple[Any, ...]],
    *,
    header: bool = True,
    width: int | None = None,
) -> str:
    """An aligned text table (numbers right-aligned) that fits `width` characters: long cells end
    in an ellipsis; columns that cannot fit at all are left out and named in the footer."""
    cells = [[_one_line(text(v)) for v in row] for row in rows]
    names = [_one_line(c) for c in columns]
    numeric = [
        bool(rows) and all(_is_number(r[i]) or r[i] is None for r in rows)
        for i in range(len(columns))
    ]
    natural = [
        max([len(names[i]) if header else 1, *(len(r[i]) for r in cells)])
        for i in range(len(columns))
    ]
    # why: a column narrower than this shows too little to read; fewer columns are shown instead
    minimum = [min(n, MIN_COLUMN_WIDTH) for n in natural]
    count = len(columns)

    def needed(k: int, hides: bool) -> int:  # two spaces between columns; 3 for a "…" column
        return sum(minimum[:k]) + 2 * (k - 1) + (3 if hides else 0)

    if width is not None and needed(count, False) > width:
        count -= 1
        while count > 1 and needed(count, True) > width:
            count -= 1
    shown = list(range(count))
    hidden = [columns[i] for i in range(len(columns)) if i not in shown]
    budget = None if width is None else width - (3 if hidden else 0)
    fitted = _widths([natural[i] for i in shown], [minimum[i] for i in shown], budget)
    w = dict(zip(shown, fitted, strict=True))

    def line(values: list[str], align_numbers: bool) -> str:
        parts = []
        for i in shown:
            cell = _fit(values[i], w[i])
            right = align_numbers and numeric[i]
            parts.append(cell.rjust(w[i]) if right else cell.ljust(w[i]))
        if hidden:
            parts.append(ELLIPSIS)
        return "  ".join(parts).rstrip()

    lines = []
    if header:
        lines.append(line(names, False))
        lines.append("  ".join("-" * w[i] for i in shown) + ("  -" if hidden else ""))
    lines.extend(line(r, True) for r in cells)
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''}"
    if hidden:
        names_shown = ", ".join(hidden[:HIDDEN_NAMES_SHOWN])
        more = ", …" if len(hidden) > HIDDEN_NAMES_SHOWN else ""
        footer += f"; {len(hidden)} columns not shown: {names_shown}{more}"
    lines.append(footer + ")")
    return "\n".join(lines) + "\n"


def batches_of(cursor: Any, size: int = 10_000) -> Iterator[list[tuple[Any, ...]]]:
    """A DuckDB result's rows, `size` at a time."""
    while True:
        batch = cursor.fetchmany(size)
        if not batch:
            return
        yield batch

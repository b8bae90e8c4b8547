"""Query results as text: aligned table, CSV, JSON lines or a Markdown table."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from .errors import QueryError

_MD_SPECIAL = re.compile(r"([\\`*{}\[\]<>|#!~])")
# why: GitHub Markdown ignores intraword underscores (TIME_WAIT, records_read), so only an
# underscore at a word boundary can start emphasis and needs escaping
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_query(con: duckdb.DuckDBPyConnection, query: str) -> QueryResult:
    try:
        cursor = con.execute(query)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall() if columns else []
    except duckdb.Error as exc:
        raise QueryError("query", str(exc).splitlines()[0]) from exc
    return QueryResult(columns, rows)


def plain(value: Any) -> str:
    """A cell as plain text: NULL as '', lists joined, timestamps in ISO form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value)
    return str(value)


def md_escape(value: Any) -> str:
    """Escape text from captures so it cannot break or inject Markdown (tables included)."""
    text = plain(value).replace("\r", " ").replace("\n", " ")
    return _MD_UNDERSCORE.sub(r"\\_", _MD_SPECIAL.sub(r"\\\1", text))


def markdown_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    if not columns:
        return ""
    lines = [
        "| " + " | ".join(md_escape(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(md_escape(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def render_result(result: QueryResult, fmt: str) -> str:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([plain(v) for v in row] for row in result.rows)
        return out.getvalue()
    if fmt == "json":
        return "".join(
            json.dumps({c: _json_value(v) for c, v in zip(result.columns, row, strict=True)}) + "\n"
            for row in result.rows
        )
    if fmt == "markdown":
        return markdown_table(result.columns, result.rows)
    cells = [[plain(v) for v in row] for row in result.rows]
    widths = [len(c) for c in result.columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )
    lines.append(f"({len(cells)} rows)")
    return "\n".join(lines) + "\n"

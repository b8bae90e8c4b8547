"""A reader of Zeek's ASCII logs (independent of pipeline/export/zeek.py), for the tests.

It follows Zeek's own reader (input/readers/ascii): the header lines give the separator, set
separator, empty and unset markers, the field names and types; `\\xHH` escapes are decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True)
class ZeekLog:
    meta: dict[str, str]  # separator, set_separator, empty_field, unset_field, path, open, close
    fields: list[str]
    types: list[str]
    raw: list[list[str]]  # each row's fields as written (not unescaped)

    def rows(self) -> list[dict[str, Any]]:
        """Each row as {field: value}: unset None, sets lists, counts/ports int, bool, time str."""
        return [
            {
                f: self.value(cell, t)
                for f, t, cell in zip(self.fields, self.types, row, strict=True)
            }
            for row in self.raw
        ]

    def value(self, cell: str, zeek_type: str) -> Any:
        if cell == self.meta["unset_field"]:
            return None
        if zeek_type.startswith(("set[", "vector[")):
            if cell == self.meta["empty_field"]:
                return []
            return [unescape(item) for item in cell.split(self.meta["set_separator"])]
        if cell == self.meta["empty_field"] and zeek_type == "string":
            return ""
        if zeek_type in ("count", "port", "int"):
            return int(cell)
        if zeek_type == "bool":
            return {"T": True, "F": False}[cell]
        return unescape(cell)


def unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def read_zeek_log(path: Path) -> ZeekLog:
    lines = path.read_text(encoding="utf-8").splitlines()
    meta: dict[str, str] = {}
    fields: list[str] = []
    types: list[str] = []
    raw = []
    separator = "\t"
    for line in lines:
        if line.startswith("#separator "):
            separator = unescape(line.split(" ", 1)[1])
            meta["separator"] = separator
        elif line.startswith("#") and not line.startswith("##"):
            key, _, rest = line[1:].partition(separator)
            if key == "fields":
                fields = rest.split(separator)
            elif key == "types":
                types = rest.split(separator)
            else:
                meta[key] = rest
        elif line and not line.startswith("#"):
            cells = line.split(separator)
            assert len(cells) == len(fields), (path, line)
            raw.append(cells)
    return ZeekLog(meta, fields, types, raw)

"""Walk JSON command output element by element, each element located at its 1-based line.

Used by the JSON ingestors (ip -j, kubectl -o json): an array is decoded one element at a time
with ``json.JSONDecoder.raw_decode``, so a truncated array still yields its complete elements and
the cut-off rest becomes a single located error; prompt lines or prose around the JSON are
reported line by line instead of failing the file. An element nested more than MAX_DEPTH
levels deep is one rejected record (Python's decoder would raise RecursionError on it, losing
the whole file); the walk goes on after its end.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from .records import RecordError


@dataclass(frozen=True)
class JsonElement:
    """One element of a top-level JSON array (or a top-level object), with its 1-based line."""

    line: int
    raw: str
    value: Any
    offset: int | None = None  # character offset of the element in the text


_Walk = Generator[JsonElement | RecordError, None, int]
_BLANKS = " \t\r\n"
MAX_DEPTH = 512
"""Deepest nesting of arrays/objects accepted in one element (Kubernetes objects: about 20)."""
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


def json_depth(text: str, pos: int = 0) -> tuple[int, int | None]:
    """Nesting depth of the JSON array or object at `pos`, and the offset just after it.

    A linear scan without recursion: brackets inside strings do not count. The offset is None
    when the value does not close before the end of `text`.
    """
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text, pos):
        token = match.group()
        if token[0] == '"':
            continue
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
            if depth <= 0:
                return deepest, match.end()
    return deepest, None


def iter_json(text: str, items_key: str | None = None) -> Iterator[JsonElement | RecordError]:
    """Yield the JSON elements of `text` in order, and a RecordError for what is not JSON.

    Top-level arrays yield their elements; top-level objects yield themselves, except that with
    `items_key` an object holding an array under that key (a kubectl ``List``) yields the
    array's elements instead. Several top-level values in a row are all walked.
    """
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    yield from _Walker(text, starts, items_key).run()


class _Walker:
    def __init__(self, text: str, starts: list[int], items_key: str | None) -> None:
        self.text, self.starts, self.items_key = text, starts, items_key
        self.decoder = json.JSONDecoder()

    def line(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos)

    def skip(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in _BLANKS:
            pos += 1
        return pos

    def at(self, pos: int) -> str:
        return self.text[pos] if pos < len(self.text) else ""

    def rest_error(self, pos: int, exc: json.JSONDecodeError | str) -> RecordError:
        """The rest of the text from `pos` as one record: a cut-off or broken element."""
        if isinstance(exc, str):
            where = exc
        elif exc.pos >= len(self.text.rstrip()) or exc.msg.startswith("Unterminated string"):
            where = "the input ends inside it"
        else:
            where = f"{exc.msg.removesuffix(' at')} at line {exc.lineno} column {exc.colno}"
        raw = self.text[pos:].rstrip()
        if not raw:  # cut right after a ',': show the last line instead of nothing
            pos = self.starts[bisect.bisect_right(self.starts, len(self.text.rstrip())) - 1]
            raw = self.text[pos:].rstrip()
        return RecordError(f"incomplete or invalid JSON element ({where})", raw, self.line(pos))

    def run(self) -> Iterator[JsonElement | RecordError]:
        pos = self.skip(0)
        while pos < len(self.text):
            ch = self.text[pos]
            if ch == "[":
                pos = yield from self.array(pos)
            elif ch == "{":
                pos = yield from self.obj(pos)
            else:
                end = self.text.find("\n", pos)
                end = len(self.text) if end < 0 else end
                raw = self.text[pos:end].rstrip()
                yield RecordError("line is not part of the JSON output", raw, line=self.line(pos))
                pos = end
            pos = self.skip(pos)

    def value(self, pos: int) -> _Walk:
        """Decode one value at `pos`; on failure report the rest of the text and stop.

        A value nested too deeply is one error and the walk goes on after it.
        """
        try:
            value, end = self.decoder.raw_decode(self.text, pos)
        except json.JSONDecodeError as exc:
            yield self.rest_error(pos, exc)
            return len(self.text)
        except RecursionError:  # deeper than Python's recursion limit allows here
            value, end = None, -1
        if end < 0 or self.too_deep(pos, end):
            depth, close = json_depth(self.text, pos)
            end = len(self.text) if close is None else close
            reason = f"nested too deeply ({depth} levels > {MAX_DEPTH})"
            if depth <= MAX_DEPTH:  # a deep call stack left less room than MAX_DEPTH
                reason = f"nested too deeply for the JSON decoder ({depth} levels)"
            if close is None:
                reason += " and cut off"
            yield RecordError(reason, self.text[pos:end].rstrip(), line=self.line(pos))
            return end
        yield JsonElement(self.line(pos), self.text[pos:end], value, pos)
        return end

    def too_deep(self, start: int, end: int) -> bool:
        """Is text[start:end] nested more than MAX_DEPTH levels? Counting brackets is cheap."""
        if self.text.count("[", start, end) + self.text.count("{", start, end) <= MAX_DEPTH:
            return False
        return json_depth(self.text[start:end])[0] > MAX_DEPTH

    def decode(self, pos: int) -> tuple[Any, int]:
        """Decode a value inside an object being walked; too deep is a decoding error."""
        try:
            value, end = self.decoder.raw_decode(self.text, pos)
        except RecursionError:
            value, end = None, -1
        if end < 0 or self.too_deep(pos, end):
            msg = f"nested too deeply (> {MAX_DEPTH} levels)"
            raise json.JSONDecodeError(msg, self.text, pos)
        return value, end

    def array(self, pos: int) -> _Walk:
        pos = self.skip(pos + 1)
        if self.at(pos) == "]":
            return pos + 1
        while True:
            pos = self.skip((yield from self.value(pos)))
            if self.at(pos) == ",":
                pos = self.skip(pos + 1)
            elif self.at(pos) == "]":
                return pos + 1
            else:
                if pos < len(self.text):
                    yield self.rest_error(pos, "expected ',' or ']' after an element")
                return len(self.text)

    def obj(self, pos: int) -> _Walk:
        if self.items_key is None:
            return (yield from self.value(pos))
        start, header, has_items = pos, dict[str, Any](), False
        pos = self.skip(pos + 1)
        try:
            while self.at(pos) != "}":
                key, pos = self.decode(pos)
                pos = self.skip(pos)
                if not isinstance(key, str) or self.at(pos) != ":":
                    raise json.JSONDecodeError("expected a key and ':'", self.text, pos)
                pos = self.skip(pos + 1)
                if key == self.items_key and self.at(pos) == "[" and not has_items:
                    has_items = True
                    pos = yield from self.array(pos)
                else:
                    header[key], pos = self.decode(pos)
                pos = self.skip(pos)
                if self.at(pos) == ",":
                    pos = self.skip(pos + 1)
                elif self.at(pos) != "}":
                    raise json.JSONDecodeError("expected ',' or '}'", self.text, pos)
        except json.JSONDecodeError as exc:
            if not has_items:
                yield self.rest_error(start, exc)  # the whole object is incomplete
            elif pos < len(self.text):
                yield self.rest_error(pos, exc)  # its elements were yielded already
            return len(self.text)
        if not has_items:
            yield JsonElement(self.line(start), self.text[start : pos + 1], header, start)
        return pos + 1

"""nftables: ``nft list ruleset`` (text, ``-a`` handles too) and ``nft -j list ruleset`` (JSON).

Kinds: ``nft-ruleset`` (text; also ``list table``/``list tables``/``list chain`` output) and
``nft-json`` (libnftables-json(5)). Both give the same rows for one ruleset: the JSON reader
renders each rule the way nft prints it (pipeline.ingest.nft.render). Records and their
bookkeeping: pipeline.ingest.nft.text and pipeline.ingest.nft.jsonform.
"""

from __future__ import annotations

import re

from ..records import Detection, ParsedChunk, clean_line
from .jsonform import parse_json
from .text import TABLE, parse_text

KINDS: tuple[str, ...] = ("nft-ruleset", "nft-json")

_JSON = re.compile(r'^\s*\{\s*"nftables"\s*:\s*\[', re.S)
_JSON_OBJECT = re.compile(r'\{\s*"(?:table|chain|rule|set|map|element|metainfo)"\s*:\s*\{')
_TEXT = re.compile(r"(?:chain|set|map)\s+\S+\s*\{(?:\s*#\s*handle\s+\d+)?$|type\s+\w+\s+hook\s")


def detect(text: str) -> Detection | None:
    """JSON: score = nftables objects seen; text: table, chain/set/map and base-chain lines."""
    if _JSON.match(text):
        return Detection("nft-json", max(1, len(_JSON_OBJECT.findall(text))))
    score = 0
    for raw in text.splitlines():
        line = clean_line(raw)
        body = re.sub(r"\s*#\s*handle\s+\d+$", "", line)
        if TABLE.match(body) or _TEXT.match(line):
            score += 1
    return Detection("nft-ruleset", score) if score else None


def parse(text: str, kind: str) -> ParsedChunk:
    return parse_json(text) if kind == "nft-json" else parse_text(text)

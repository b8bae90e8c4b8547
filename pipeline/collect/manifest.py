"""The manifest of one node in a collected bundle: what was run, how it ended, and on what.

``<bundle>/<node>/manifest.json``: the access used, the node's clock at start and end (read on
the node, next to the collector's own clock, so a skew is visible), its kernel, its tool
versions, and per command its argv (as run on the node and as run here), exit status, stderr,
output file and whether analyze reads that file (outputs natlens does not read, empty ones
included, are kept under ``.unread/``, which analyze does not open). ``<bundle>/cluster/``
gets one for the kubectl objects. `analyze` recognises a manifest by its
``natlens_manifest`` key and skips it as provenance.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import write_text_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_KEY = "natlens_manifest"
MANIFEST_VERSION = 1
STDERR_CAP = 4096  # characters of a command's stderr kept in the manifest


@dataclass
class CommandRecord:
    """How one command went on one node."""

    name: str
    argv: list[str]  # as run on the node
    argv_here: list[str]  # as run by the collector (access prefix included)
    status: str  # ok | failed | missing | timeout | error
    exit_status: int | None = None
    stderr: str = ""
    file: str | None = None  # path of its output, relative to the node folder
    bytes: int = 0
    read_by_analyze: bool = False
    kind: str | None = None  # what analyze recognises the file as
    not_read_because: str | None = None
    started: str | None = None  # collector's clock, UTC ISO
    ended: str | None = None


@dataclass
class NodeManifest:
    """Everything `collect` knows about one node's part of the bundle."""

    bundle: str
    node: str
    access: dict[str, str]
    capture: dict[str, Any]
    clock_start: str | None = None  # the node's clock (date -u) before the first command
    clock_end: str | None = None  # and after the last
    collector_clock_start: str | None = None
    collector_clock_end: str | None = None
    kernel: str | None = None
    tools: dict[str, str] = field(default_factory=dict)  # tool -> first line of --version
    missing_tools: list[str] = field(default_factory=list)
    reachable: bool = True
    error: str | None = None
    commands: list[CommandRecord] = field(default_factory=list)

    def to_json(self) -> str:
        body = {MANIFEST_KEY: MANIFEST_VERSION, "natlens_version": __version__, **asdict(self)}
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_NAME
        write_text_atomic(path, self.to_json())
        return path


def cap_stderr(text: str) -> str:
    text = text.strip()
    if len(text) <= STDERR_CAP:
        return text
    return text[:STDERR_CAP] + f"… [truncated, {len(text)} chars]"


def is_manifest(data: bytes) -> bool:
    """Is this file a collect manifest? (by content: a JSON object with the manifest key)."""
    head = data[:256].lstrip()
    if not head.startswith(b"{") or MANIFEST_KEY.encode() not in head:
        return False
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(parsed, dict) and MANIFEST_KEY in parsed


def read_manifest(path: Path) -> dict[str, Any]:
    parsed = json.loads(path.read_text())
    if not isinstance(parsed, dict) or MANIFEST_KEY not in parsed:
        raise ValueError(f"{path}: not a natlens collect manifest")
    return parsed

"""Find the files of a capture bundle and recognise each file's kind by its content.

A bundle is a directory. Each sub-directory is a node (folder name = node name); files directly in
the bundle, and files under ``cluster/``, belong to node ``-``. Single files may be passed too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pipeline.errors import InputError
from pipeline.ingest import TEXT_INGESTORS

BUNDLE_LEVEL_NODE = "-"
CLUSTER_FOLDER = "cluster"
SNIFF_BYTES = 64 * 1024
DOC_NAMES = ("readme",)

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "pcap",
    b"\xa1\xb2\xc3\xd4": "pcap",
    b"\x4d\x3c\xb2\xa1": "pcap",
    b"\xa1\xb2\x3c\x4d": "pcap",
    b"\x0a\x0d\x0d\x0a": "pcapng",
}


@dataclass(frozen=True)
class InputFile:
    """One file to ingest, with where it came from."""

    path: Path  # where to read it
    display: str  # the path as the user would write it (for messages)
    bundle_id: str
    node: str
    source_file: str  # bundle-relative path stored in the database (no absolute paths)


@dataclass(frozen=True)
class Sniffed:
    """What a file is: `kind` and the text ingestor for it, or why it is skipped."""

    kind: str | None
    ingestor: ModuleType | None
    reason: str | None = None
    is_binary: bool = False


def discover(
    paths: Iterable[Path], *, node: str | None = None, bundle_id: str | None = None
) -> list[InputFile]:
    """Expand bundle directories and single files into InputFiles, in a stable order."""
    found: list[InputFile] = []
    for given in paths:
        if given.is_dir():
            found.extend(_bundle_files(given, bundle_id))
        elif given.is_file():
            found.append(
                InputFile(
                    path=given,
                    display=str(given),
                    bundle_id=bundle_id or "files",
                    node=node or BUNDLE_LEVEL_NODE,
                    source_file=given.name,
                )
            )
        else:
            raise InputError(
                str(given), "no such file or directory", hint="pass a bundle directory or files"
            )
    return found


def _bundle_files(root: Path, bundle_id: str | None) -> list[InputFile]:
    name = bundle_id or root.resolve().name
    files: list[InputFile] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        top = rel.parts[0] if len(rel.parts) > 1 else None
        node = BUNDLE_LEVEL_NODE if top in (None, CLUSTER_FOLDER) else top
        files.append(
            InputFile(
                path=path,
                display=str(path),
                bundle_id=name,
                node=node,
                source_file=f"{name}/{rel.as_posix()}",
            )
        )
    return files


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes) -> str:
    """Decode a text capture; undecodable bytes become U+FFFD so a line can still be located."""
    text = data.decode("utf-8", errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


def sniff(path: Path, data: bytes) -> Sniffed:
    """Recognise a file's kind by content. Never by name, except to skip bundle documentation."""
    magic = data[:4]
    if magic in PCAP_MAGICS:
        return Sniffed(PCAP_MAGICS[magic], None, is_binary=True)
    if path.stem.lower() in DOC_NAMES or path.suffix.lower() == ".md":  # bundle provenance
        return Sniffed(None, None, "bundle documentation (README), not a capture")
    if not data.strip():
        return Sniffed(None, None, "empty file")
    if b"\x00" in data[:SNIFF_BYTES]:
        return Sniffed(None, None, "binary content that is not a pcap/pcapng capture")
    text = decode_text(data)
    best: tuple[int, str, ModuleType] | None = None
    for module in TEXT_INGESTORS:
        detection = module.detect(text)
        if detection is not None and detection.score > 0:
            if best is None or detection.score > best[0]:
                best = (detection.score, detection.kind, module)
    if best is None:
        return Sniffed(None, None, _unrecognised_reason(text))
    return Sniffed(best[1], best[2])


def _unrecognised_reason(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"content not recognised as any supported capture format (first line: {first[:60]!r})"

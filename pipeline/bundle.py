"""Find the files of a capture bundle and recognise each file's kind by its content.

A bundle is a directory. Each sub-directory is a node (folder name = node name); files directly in
the bundle, and files under ``cluster/``, belong to node ``-``. Single files may be passed too.

A folder of bundles (what `natlens collect --out DIR` fills, one run after another) is a
directory whose sub-directories all have UTC timestamp names (``20250101T120000Z``): each is a
bundle of its own, its id its folder name, its nodes its inner folders.

A directory without sub-directories is one node's directory taken out of its bundle: its files
belong to that node (its folder name, or ``--node``) of the bundle above it (the parent folder's
name, or ``--bundle-id``), stored under the same names as when the whole bundle is loaded; a
``cluster/`` folder given alone belongs to node ``-`` in the same way.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .collect.manifest import is_manifest
from .errors import InputError
from .ingest import TEXT_INGESTORS
from .ingest.blocks import decode_text, iter_blocks

BUNDLE_LEVEL_NODE = "-"
CLUSTER_FOLDER = "cluster"
SNIFF_BYTES = 64 * 1024
SCORE_CHARS = 16 * 1024 * 1024
"""A text file's kinds are scored on about this much of it (whole blocks)."""
DOC_NAMES = ("readme",)
# a timestamped bundle's folder name: 20250101T120000Z, 2025-01-01T12:00:00Z, ...T12-00-00.5Z
BUNDLE_STAMP = re.compile(r"^\d{4}-?\d{2}-?\d{2}T\d{2}[:-]?\d{2}[:-]?\d{2}(\.\d+)?Z$")

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


@dataclass(frozen=True)
class Skipped:
    """An entry of a bundle that is not read, and why (printed as ``DISPLAY: skipped: REASON``)."""

    display: str
    reason: str


@dataclass(frozen=True)
class Discovered:
    """What `discover_all` found: the files to load and the entries it did not open."""

    files: list[InputFile]
    skipped: list[Skipped]


def discover(
    paths: Iterable[Path], *, node: str | None = None, bundle_id: str | None = None
) -> list[InputFile]:
    """Expand bundle directories and single files into InputFiles, in a stable order.

    The entries not opened (links, special files) are dropped here; `discover_all` lists them.
    """
    return discover_all(paths, node=node, bundle_id=bundle_id).files


def discover_all(
    paths: Iterable[Path], *, node: str | None = None, bundle_id: str | None = None
) -> Discovered:
    """Expand bundle directories and single files into InputFiles, and list what is skipped.

    A bundle is untrusted: inside it no symbolic link is followed (file or directory) and no
    special file (FIFO, socket, device) is opened; each is listed in `skipped` with the reason.
    A path given here is followed even if it is a link, since the user named it. Names that are
    not UTF-8 are kept, shown and stored with their bytes escaped (``name\\xff.txt``).
    """
    found = Discovered([], [])
    for given in paths:
        try:
            mode = given.stat().st_mode  # follows a link: the user named this path
        except OSError as exc:
            missing = isinstance(exc, FileNotFoundError) or not exc.strerror
            raise InputError(
                display_name(given),
                "no such file or directory" if missing else f"cannot read: {exc.strerror}",
                hint="pass a bundle directory or files",
            ) from exc
        if stat.S_ISDIR(mode):
            stamped = timestamped_bundles(given)
            if stamped and bundle_id is not None:
                raise InputError(
                    display_name(given),
                    f"a folder of {len(stamped)} timestamped bundles: --bundle-id names one bundle",
                    hint="leave out --bundle-id (each bundle's id is its folder name)",
                )
            if stamped:
                _skip_beside_bundles(given, found)
                for inner in stamped:
                    _walk_bundle(inner, None, found)
            elif is_node_dir(given, node):
                _walk_node_dir(given, node, bundle_id, found)
            else:
                _walk_bundle(given, bundle_id, found)
        elif stat.S_ISREG(mode):
            found.files.append(
                InputFile(
                    path=given,
                    display=display_name(given),
                    bundle_id=bundle_id or "files",
                    node=node or BUNDLE_LEVEL_NODE,
                    source_file=display_name(given.name),
                )
            )
        else:
            found.skipped.append(Skipped(display_name(given), _special_reason(mode)))
    return found


def timestamped_bundles(folder: Path) -> list[Path]:
    """The bundles of a folder of timestamped bundles, in time order; [] for any other folder.

    A folder of bundles: at least one sub-directory, and every sub-directory (hidden ones aside)
    named by a UTC timestamp. Links are not followed (as inside a bundle).
    """
    try:
        with os.scandir(folder) as scan:
            dirs = [
                e.name
                for e in scan
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return []
    if not dirs or not all(BUNDLE_STAMP.match(name) for name in dirs):
        return []
    return [folder / name for name in sorted(dirs)]


def bundle_ids_in(folder: Path, bundle_id: str | None = None) -> list[str]:
    """The bundle ids a directory given to analyze stands for (one, or one per timestamp)."""
    stamped = timestamped_bundles(folder)
    if stamped:
        return [display_name(p.name) for p in stamped]
    return [bundle_id or display_name(folder.resolve().name)]


def _skip_beside_bundles(folder: Path, found: Discovered) -> None:
    """Entries of a folder of bundles that are not bundles are listed, not read."""
    with os.scandir(folder) as scan:
        names = sorted(
            e.name
            for e in scan
            if not e.name.startswith(".") and not e.is_dir(follow_symlinks=False)
        )
    for name in names:
        found.skipped.append(
            Skipped(
                display_name(folder / name),
                "beside the timestamped bundles of this folder (each bundle is a folder)",
            )
        )


def display_name(path: str | Path) -> str:
    """A file name as printable UTF-8 text: bytes that are not UTF-8 become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _special_reason(mode: int) -> str:
    for test, what in _SPECIAL_KINDS:
        if test(mode):
            return f"{what} (not a regular file, not opened)"
    return "not a regular file (not opened)"


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def is_node_dir(folder: Path, node: str | None) -> bool:
    """Is the directory `folder` read as one node's directory (with --node, or when flat)?

    Such a directory is part of a bundle: files of its bundle that it lacks are not gone."""
    return node is not None or _is_flat(folder)


def _is_flat(folder: Path) -> bool:
    """A directory with files and no sub-directory (hidden entries aside): one node's."""
    try:
        with os.scandir(folder) as scan:
            entries = [e for e in scan if not e.name.startswith(".")]
        return not any(e.is_dir(follow_symlinks=False) for e in entries) and any(
            e.is_file(follow_symlinks=False) for e in entries
        )
    except OSError:
        return False


def _walk_node_dir(root: Path, node: str | None, bundle_id: str | None, found: Discovered) -> None:
    """One node's directory: every file under it is that node's, named as in its bundle."""
    resolved = root.resolve()
    folder = display_name(resolved.name)
    bundle = bundle_id or display_name(resolved.parent.name) or folder
    default_node = BUNDLE_LEVEL_NODE if folder == CLUSTER_FOLDER else folder
    _walk_bundle(root, bundle, found, node=node or default_node, prefix=f"{bundle}/{folder}")


def _walk_bundle(
    root: Path,
    bundle_id: str | None,
    found: Discovered,
    *,
    node: str | None = None,
    prefix: str | None = None,
) -> None:
    """Add the regular files under `root` to `found`, in path order; never follow a link.

    With `node`, every file is that node's and its stored name starts with `prefix`."""
    name = bundle_id or display_name(root.resolve().name)
    prefix = prefix or name
    regular: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    seen_dirs: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            info = folder.stat(follow_symlinks=folder == root)  # the root may be a named link
            if (info.st_dev, info.st_ino) in seen_dirs:  # e.g. a bind mount of a folder above
                skipped.append((folder, "directory loop (already walked, not walked again)"))
                continue
            seen_dirs.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as exc:
            skipped.append((folder, f"cannot list directory: {exc.strerror or exc}"))
            continue
        for entry in entries:
            path = folder / entry.name
            if entry.name.startswith("."):
                continue
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                skipped.append((path, f"cannot stat: {exc.strerror or exc}"))
                continue
            if stat.S_ISLNK(mode):
                skipped.append((path, f"symbolic link (not followed): -> {_link_target(path)}"))
            elif stat.S_ISDIR(mode):
                pending.append(path)
            elif stat.S_ISREG(mode):
                regular.append(path)
            else:
                skipped.append((path, _special_reason(mode)))
    stored: dict[str, Path] = {}
    for path in sorted(regular):
        rel = path.relative_to(root)
        source_file = f"{prefix}/{display_name(rel.as_posix())}"
        if source_file in stored:  # e.g. a name holding the text '\xff' beside byte 0xFF
            other = display_name(stored[source_file])
            skipped.append((path, f"its escaped name is that of {other} (not loaded twice)"))
            continue
        stored[source_file] = path
        top = rel.parts[0] if len(rel.parts) > 1 else None
        file_node = BUNDLE_LEVEL_NODE if top in (None, CLUSTER_FOLDER) else display_name(top)
        found.files.append(
            InputFile(
                path=path,
                display=display_name(path),
                bundle_id=name,
                node=node or file_node,
                source_file=source_file,
            )
        )
    found.skipped.extend(Skipped(display_name(p), reason) for p, reason in sorted(skipped))


def _link_target(path: Path) -> str:
    try:
        return display_name(os.readlink(path))
    except OSError as exc:
        return f"(unreadable: {exc.strerror or exc})"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sniff(path: Path, data: bytes) -> Sniffed:
    """Recognise a file's kind by content. Never by name, except to skip bundle documentation."""
    magic = data[:4]
    if magic in PCAP_MAGICS:
        return Sniffed(PCAP_MAGICS[magic], None, is_binary=True)
    if path.stem.lower() in DOC_NAMES or path.suffix.lower() == ".md":  # bundle provenance
        return Sniffed(None, None, "bundle documentation (README), not a capture")
    if not data.strip():
        return Sniffed(None, None, "empty file")
    if is_manifest(data):
        return Sniffed(None, None, "natlens collect manifest (provenance), not a capture")
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


def sniff_whole(path: Path) -> Sniffed:
    """Score the text kinds over the whole file, block by block (memory bounded by a block).

    Each block's best kind per ingestor adds its score over the first SCORE_CHARS or so; the
    highest total wins, ties going to the ingestor listed first, as in `sniff`.
    """
    totals: dict[tuple[str, ModuleType], int] = {}
    scored = 0
    for block in iter_blocks(path, lambda _line: True):
        scored += len(block.text)
        if scored > SCORE_CHARS + len(block.text):
            break  # enough to tell the kinds apart; scoring a 1 GB dump would cost minutes
        for module in TEXT_INGESTORS:
            detection = module.detect(block.text)
            if detection is not None and detection.score > 0:
                key = (detection.kind, module)
                totals[key] = totals.get(key, 0) + detection.score
    if not totals:
        return Sniffed(None, None, "content not recognised as any supported capture format")
    (kind, module), _ = max(totals.items(), key=lambda item: item[1])  # first of equals wins
    return Sniffed(kind, module)


def _unrecognised_reason(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"content not recognised as any supported capture format (first line: {first[:60]!r})"

"""Bundles are untrusted input: discovery never follows a link, never opens a special file and
keeps files whose names are not UTF-8 (real files, links, FIFOs and sockets on disk)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pipeline.bundle import BUNDLE_LEVEL_NODE, Discovered, discover, discover_all

REPO = Path(__file__).resolve().parent.parent
CONNTRACK = (
    "tcp      6 83 TIME_WAIT src=172.18.0.6 dst=172.18.0.5 sport=34212 dport=30001 "
    "src=10.10.1.2 dst=172.18.0.5 sport=80 dport=29038 [ASSURED] mark=0 use=1\n"
)
SECRET = CONNTRACK.replace("172.18.0.6", "203.0.113.99")  # a line that must never be loaded


def _write(path: Path, text: str = CONNTRACK) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _create_bytes_name(folder: Path, name: bytes, text: str = CONNTRACK) -> None:
    fd = os.open(os.fsencode(folder) + b"/" + name, os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, text.encode())
    os.close(fd)


def _skipped(found: Discovered, root: Path) -> dict[str, str]:
    """Skipped entries by bundle-relative display path."""
    prefix = str(root) + "/"
    assert all(s.display.startswith(prefix) for s in found.skipped)
    return {s.display.removeprefix(prefix): s.reason for s in found.skipped}


def _sources(found: Discovered) -> list[str]:
    return [f.source_file for f in found.files]


def test_plain_bundle_nodes_cluster_and_hidden(tmp_path: Path) -> None:
    root = tmp_path / "b"
    _write(root / "top.txt")
    _write(root / "cluster" / "svc.txt")
    _write(root / "worker" / "sub" / "ct.txt")
    _write(root / ".git" / "config")
    _write(root / "worker" / ".hidden.txt")
    found = discover_all([root])
    assert [(f.node, f.source_file) for f in found.files] == [
        ("-", "b/cluster/svc.txt"),
        ("-", "b/top.txt"),
        ("worker", "b/worker/sub/ct.txt"),
    ]
    assert found.skipped == []  # hidden entries are ignored, not reported
    assert discover([root]) == found.files


def test_symlinks_are_listed_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "b"
    other = tmp_path / "other-bundle"
    _write(other / "worker" / "ct.txt", SECRET)
    secret = _write(tmp_path / "secret.txt", SECRET)
    _write(root / "worker" / "ct.txt")
    (root / "worker" / "shadow.txt").symlink_to("/etc/shadow")
    (root / "worker" / "secret.txt").symlink_to(secret)
    (root / "worker" / "twin.txt").symlink_to("ct.txt")  # inside the bundle: still not followed
    (root / "other").symlink_to(other)  # a directory of another bundle
    (root / "worker" / "loop").symlink_to("..")  # a directory loop
    (root / "worker" / "dangling").symlink_to(tmp_path / "missing")
    found = discover_all([root])
    assert _sources(found) == ["b/worker/ct.txt"]
    assert _skipped(found, root) == {
        "other": f"symbolic link (not followed): -> {other}",
        "worker/dangling": f"symbolic link (not followed): -> {tmp_path / 'missing'}",
        "worker/loop": "symbolic link (not followed): -> ..",
        "worker/secret.txt": f"symbolic link (not followed): -> {secret}",
        "worker/shadow.txt": "symbolic link (not followed): -> /etc/shadow",
        "worker/twin.txt": "symbolic link (not followed): -> ct.txt",
    }


def test_a_named_link_is_followed(tmp_path: Path) -> None:
    """The user named it: a link given on the command line (file or bundle) is followed."""
    real_file = _write(tmp_path / "real" / "ct.txt")
    (tmp_path / "link.txt").symlink_to(real_file)
    (tmp_path / "bundle-link").symlink_to(tmp_path / "real")
    found = discover_all([tmp_path / "link.txt", tmp_path / "bundle-link"])
    # a directory without sub-directories is one node's (its folder's name) of the bundle above
    assert [(f.bundle_id, f.node, f.source_file) for f in found.files] == [
        ("files", BUNDLE_LEVEL_NODE, "link.txt"),
        (tmp_path.name, "real", f"{tmp_path.name}/real/ct.txt"),
    ]
    assert found.skipped == []


@pytest.fixture
def unix_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "b" / "worker"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)  # a relative name: socket paths are limited to 108 bytes
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind("api.sock")
        yield folder / "api.sock"


def test_special_files_are_listed_never_opened(tmp_path: Path, unix_socket: Path) -> None:
    root = tmp_path / "b"
    _write(root / "worker" / "ct.txt")
    os.mkfifo(root / "worker" / "pipe.txt")  # opening it for reading would block forever
    expected = {
        "worker/api.sock": "socket (not a regular file, not opened)",
        "worker/pipe.txt": "FIFO (named pipe) (not a regular file, not opened)",
    }
    try:
        os.mknod(root / "worker" / "null.txt", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        expected["worker/null.txt"] = "character device (not a regular file, not opened)"
    except PermissionError:
        pass  # no CAP_MKNOD here: FIFO and socket still checked
    assert unix_socket.is_socket()
    found = discover_all([root])
    assert _sources(found) == ["b/worker/ct.txt"]
    assert _skipped(found, root) == expected


def test_a_named_fifo_is_skipped_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    found = discover_all([tmp_path / "pipe"])
    assert found.files == []
    assert [(s.display, s.reason) for s in found.skipped] == [
        (str(tmp_path / "pipe"), "FIFO (named pipe) (not a regular file, not opened)")
    ]


def test_names_that_are_not_utf8_are_kept_and_escaped(tmp_path: Path) -> None:
    root = tmp_path / "b"
    node = os.fsencode(root) + b"/node\xfe"
    os.makedirs(node)
    _create_bytes_name(Path(os.fsdecode(node)), b"conntrack\xff.txt")
    found = discover_all([root])
    [f] = found.files
    assert (f.node, f.source_file) == ("node\\xfe", "b/node\\xfe/conntrack\\xff.txt")
    assert f.display == f"{root}/node\\xfe/conntrack\\xff.txt"
    assert f.path.read_text() == CONNTRACK  # the real name still opens the file
    f.source_file.encode("utf-8")  # valid text (no surrogates): DuckDB and terminals take it
    assert found.skipped == []


def test_escaped_names_that_collide_are_not_merged(tmp_path: Path) -> None:
    """A file named with the text `\\xff` beside one with the byte 0xFF: the first in path order
    is loaded, the other is listed as skipped (both under one source_file would replace rows)."""
    root = tmp_path / "b"
    (root / "w").mkdir(parents=True)
    _create_bytes_name(root / "w", b"ct\xff.txt", SECRET)
    _create_bytes_name(root / "w", b"ct\\xff.txt")
    found = discover_all([root])
    [f] = found.files
    assert f.source_file == "b/w/ct\\xff.txt"
    assert f.path.read_text() == CONNTRACK  # the name with the backslash sorts first
    assert _skipped(found, root) == {
        "w/ct\\xff.txt": f"its escaped name is that of {root}/w/ct\\xff.txt (not loaded twice)"
    }


def test_unreadable_folder_is_listed(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any folder")
    root = tmp_path / "b"
    _write(root / "worker" / "ct.txt")
    (root / "locked").mkdir()
    (root / "locked").chmod(0)
    try:
        found = discover_all([root])
    finally:
        (root / "locked").chmod(0o755)
    assert _sources(found) == ["b/worker/ct.txt"]
    assert _skipped(found, root) == {"locked": "cannot list directory: Permission denied"}


def test_analyze_reports_skipped_entries_and_loads_only_regular_files(tmp_path: Path) -> None:
    """The real command on a hostile bundle: it ends, prints each skipped entry, loads the
    file with a non-UTF-8 name, and stores nothing from outside the bundle."""
    root = tmp_path / "b"
    worker = root / "worker"
    _write(worker / "ct.txt")
    _create_bytes_name(worker, b"ct\xff.txt")
    (worker / "shadow").symlink_to("/etc/shadow")
    (worker / "secret.txt").symlink_to(_write(tmp_path / "secret.txt", SECRET))
    os.mkfifo(worker / "pipe.txt")
    db = tmp_path / "n.duckdb"
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "analyze", str(root), "--db", str(db)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    fifo = "FIFO (named pipe) (not a regular file, not opened)"
    assert f"{worker}/pipe.txt: skipped: {fifo}" in lines
    assert f"{worker}/shadow: skipped: symbolic link (not followed): -> /etc/shadow" in lines
    assert (
        f"{worker}/secret.txt: skipped: symbolic link (not followed): -> {tmp_path}/secret.txt"
        in lines
    )
    assert any(line.startswith(f"{worker}/ct\\xff.txt: conntrack") for line in lines), lines
    con = duckdb.connect(str(db), read_only=True)
    loaded = con.execute(
        "select source_file, status, records_parsed from raw_ingest_files order by source_file"
    ).fetchall()
    assert loaded == [("b/worker/ct.txt", "loaded", 1), ("b/worker/ct\\xff.txt", "loaded", 1)]
    assert con.execute(
        "select count(*) from raw_conntrack_entries where orig_src = '203.0.113.99'"
    ).fetchone() == (0,)
    con.close()
    quiet = subprocess.run(
        [sys.executable, "-m", "pipeline", "analyze", str(root), "--db", str(db), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert quiet.returncode == 0 and "skipped" not in quiet.stderr, quiet.stderr

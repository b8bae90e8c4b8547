"""A folder of timestamped bundles (what `natlens collect --out DIR` fills) is read as bundles:
one bundle id per timestamp folder, its nodes the folders inside (issue 13)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from pipeline.bundle import BUNDLE_STAMP, discover_all, timestamped_bundles
from pipeline.cli import app

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab-iptables"
STAMPS = ("20250101T000000Z", "20250101T001500Z", "20250101T003000Z")
NODES = {
    STAMPS[0]: ("myk8s-control-plane", "myk8s-worker"),
    STAMPS[1]: ("myk8s-control-plane", "myk8s-worker", "myk8s-worker2"),
    STAMPS[2]: ("myk8s-worker", "myk8s-worker3"),
}


def make_folder(root: Path) -> Path:
    """Three bundles of lab text files, a README beside them and a half-written one (hidden)."""
    folder = root / "bundles"
    for stamp, nodes in NODES.items():
        for node in nodes:
            (folder / stamp / node).mkdir(parents=True)
            for name in ("iptables-save.txt", "ip-addr.json"):
                shutil.copy(LAB / node / name, folder / stamp / node / name)
        (folder / stamp / "cluster").mkdir()
        shutil.copy(LAB / "cluster" / "services.json", folder / stamp / "cluster")
    (folder / "README.md").write_text("collected every 15 minutes\n")
    (folder / ".20250101T004500Z.partial" / "myk8s-worker").mkdir(parents=True)
    return folder


def test_stamp_names() -> None:
    for name in (*STAMPS, "2025-01-01T00:00:00Z", "2025-01-01T00-00-00.25Z"):
        assert BUNDLE_STAMP.match(name), name
    for name in ("myk8s-worker", "20250101", "2025-01-01", "20250101T000000"):
        assert not BUNDLE_STAMP.match(name), name


def test_discover_gives_one_bundle_per_timestamp_with_its_nodes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    assert [p.name for p in timestamped_bundles(folder)] == list(STAMPS)
    found = discover_all([folder])
    got: dict[str, set[str]] = {}
    for f in found.files:
        got.setdefault(f.bundle_id, set()).add(f.node)
        assert f.source_file.startswith(f"{f.bundle_id}/")
    assert got == {stamp: {*nodes, "-"} for stamp, nodes in NODES.items()}
    assert [(s.display.rsplit("/", 1)[1], "beside" in s.reason) for s in found.skipped] == [
        ("README.md", True)
    ]
    # a bundle that is not in a folder of bundles is read as before: its folders are nodes
    one = discover_all([folder / STAMPS[0]])
    assert {(f.bundle_id, f.node) for f in one.files} == {
        (STAMPS[0], n) for n in (*NODES[STAMPS[0]], "-")
    }
    # a folder with one non-timestamp sub-folder is one bundle, as before
    (folder / "notes").mkdir()
    assert timestamped_bundles(folder) == []


def test_analyze_folder_of_bundles_keeps_each_bundle_id(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    db = tmp_path / "n.duckdb"
    runner = CliRunner()
    result = runner.invoke(app, ["analyze", str(folder), "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    assert "README.md: skipped: beside the timestamped bundles" in result.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        pairs = set(con.execute("select distinct bundle_id, node from ingest_files").fetchall())
    assert pairs == {(s, n) for s, nodes in NODES.items() for n in (*nodes, "-")}
    # the same bundle analyzed alone has the same id: nothing new
    alone = runner.invoke(app, ["analyze", str(folder / STAMPS[1]), "--db", str(db)])
    assert alone.exit_code == 0, alone.stderr
    assert "total: 7 files (7 unchanged)" in alone.stderr
    # a file gone from one bundle of the folder is dropped on the next run of the folder
    (folder / STAMPS[1] / "myk8s-worker2" / "ip-addr.json").unlink()
    again = runner.invoke(app, ["analyze", str(folder), "--db", str(db)])
    assert again.exit_code == 0, again.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        left = con.execute(
            "select source_file from ingest_files where bundle_id = ? and node = 'myk8s-worker2'",
            [STAMPS[1]],
        ).fetchall()
    assert left == [(f"{STAMPS[1]}/myk8s-worker2/iptables-save.txt",)]


def test_bundle_id_option_with_a_folder_of_bundles_is_an_input_error(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    result = CliRunner().invoke(
        app, ["analyze", str(folder), "--db", str(tmp_path / "x.duckdb"), "--bundle-id", "b"]
    )
    assert result.exit_code == 3
    assert "folder of 3 timestamped bundles" in result.stderr

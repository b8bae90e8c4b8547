"""Two timestamped bundles of one database (issue 13): `natlens report` scoped to a bundle, a
node or a time window says what it covers, and `natlens diff` names what changed between them.

The second bundle is a copy of the lab's text files with known changes made to it: one node
gone, a Service deleted, a backend (pod) gone from another Service's EndpointSlice, every
conntrack entry of one Service to one backend gone (its share drops to 0), and a conntrack line
that cannot be parsed. Those changes are the oracle.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.scope import parse_time

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab-iptables"
OLD, NEW = "20250101T000000Z", "20250101T001500Z"
NODES = ("myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3")
NODE_FILES = ("conntrack.txt", "iptables-save.txt", "ip-addr.json", "ip-route.json")
CLUSTER_FILES = ("services.json", "endpointslices.json", "pods.json", "nodes.json")
BAD_LINE = "tcp      6 this is not a conntrack entry\n"
# the entries of the ClusterIP Service that its third backend answered
GONE = re.compile(r"dst=10\.200\.1\.216 .* src=10\.10\.3\.2 ")
runner = CliRunner()


def _copy_bundle(folder: Path, stamp: str, nodes: tuple[str, ...]) -> Path:
    bundle = folder / stamp
    for node in nodes:
        (bundle / node).mkdir(parents=True)
        for name in NODE_FILES:
            shutil.copy(LAB / node / name, bundle / node / name)
    (bundle / "cluster").mkdir()
    for name in CLUSTER_FILES:
        shutil.copy(LAB / "cluster" / name, bundle / "cluster" / name)
    return bundle


def _edit_json(path: Path, edit: object) -> None:
    doc = json.loads(path.read_text())
    assert callable(edit)
    edit(doc)
    path.write_text(json.dumps(doc, indent=2))


def _drop_service(doc: dict) -> None:
    doc["items"] = [i for i in doc["items"] if i["metadata"]["name"] != "svc-udp"]


def _drop_webpod2_from_clusterip(doc: dict) -> None:
    for item in doc["items"]:
        if item["metadata"]["name"].startswith("svc-clusterip"):
            item["endpoints"] = [
                e for e in item["endpoints"] if e.get("targetRef", {}).get("name") != "webpod2"
            ]


@pytest.fixture(scope="module")
def two_bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("two-bundles")
    folder = root / "bundles"
    _copy_bundle(folder, OLD, NODES)
    new = _copy_bundle(folder, NEW, NODES[:3])  # myk8s-worker3 is gone
    _edit_json(new / "cluster" / "services.json", _drop_service)
    _edit_json(new / "cluster" / "endpointslices.json", _drop_webpod2_from_clusterip)
    for node in NODES[:3]:
        path = new / node / "conntrack.txt"
        kept = [x for x in path.read_text().splitlines(True) if not GONE.search(x)]
        path.write_text("".join(kept))
    with (new / "myk8s-worker" / "conntrack.txt").open("a") as f:
        f.write(BAD_LINE)
    db = root / "runs.duckdb"
    result = runner.invoke(app, ["analyze", str(folder), "--db", str(db), "-q"])
    assert result.exit_code == 0, result.stderr
    return db


def _covers(report: str) -> str:
    [line] = [x for x in report.splitlines() if x.startswith("Covers: ")]
    return line


def _inventory_nodes(report: str) -> set[str]:
    section = report.split("## Inventory", 1)[1].split("<details>", 1)[0]
    rows = [x for x in section.splitlines() if x.startswith("| ") and not x.startswith("| node")]
    return {r.split("|")[1].strip() for r in rows}


def test_report_scoped_to_a_bundle_and_a_node(two_bundles: Path) -> None:
    whole = runner.invoke(app, ["report", "--db", str(two_bundles)])
    assert whole.exit_code == 0, whole.stderr
    assert _covers(whole.stdout).startswith(f"Covers: bundles {OLD}, {NEW}; nodes -, ")
    assert _inventory_nodes(whole.stdout) == {"-", *NODES}

    latest = runner.invoke(app, ["report", "--db", str(two_bundles), "--bundle", "latest"])
    assert latest.exit_code == 0, latest.stderr
    assert _covers(latest.stdout).startswith(f"Covers: bundle {NEW}; nodes -, ")
    assert "myk8s-worker3" not in latest.stdout  # not in the newest bundle at all
    assert _inventory_nodes(latest.stdout) == {"-", *NODES[:3]}

    old_worker = runner.invoke(
        app, ["report", "--db", str(two_bundles), "--bundle", OLD, "--node", "myk8s-worker"]
    )
    assert old_worker.exit_code == 0, old_worker.stderr
    assert _covers(old_worker.stdout).startswith(f"Covers: bundle {OLD}; node myk8s-worker;")
    assert _inventory_nodes(old_worker.stdout) == {"myk8s-worker"}
    # every translation listed is one of that node's conntrack entries
    nat = old_worker.stdout.split("## NAT translations", 1)[1].split("## Why", 1)[0]
    rows = [x for x in nat.splitlines() if x.startswith("| myk8s")]
    assert rows and all(r.startswith("| myk8s-worker |") for r in rows)
    assert "myk8s-worker3" not in old_worker.stdout


def test_report_time_window_and_bad_scopes(two_bundles: Path) -> None:
    # the bundles' conntrack listings carry no times: a bundle is placed by its stamp
    after_old = runner.invoke(
        app, ["report", "--db", str(two_bundles), "--since", "2025-01-01T00:10:00Z"]
    )
    assert after_old.exit_code == 0, after_old.stderr
    assert _covers(after_old.stdout).startswith(f"Covers: bundle {NEW};")
    # its conntrack listing has no times: its entries are the bundle's, so they are kept
    states = after_old.stdout.split("## Conntrack state mix", 1)[1].split("## ", 1)[0]
    assert "| myk8s-worker | tcp |" in states
    before_new = runner.invoke(app, ["report", "--db", str(two_bundles), "--until", NEW])
    assert before_new.exit_code == 0, before_new.stderr
    assert _covers(before_new.stdout).startswith(f"Covers: bundle {OLD};")

    for args, message in (
        (["--bundle", "nope"], "no bundle 'nope'"),
        (["--node", "nope"], "no node 'nope'"),
        (["--since", "yesterday"], "is not a time"),
    ):
        bad = runner.invoke(app, ["report", "--db", str(two_bundles), *args])
        assert bad.exit_code == 2 and message in bad.stderr, bad.stderr


def _lines(text: str, section: str) -> list[str]:
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return [x.strip() for x in body.splitlines() if x.startswith("    ")]


def test_diff_names_what_changed(two_bundles: Path) -> None:
    result = runner.invoke(app, ["diff", "--db", str(two_bundles)])  # default: the two newest
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith(f"# natlens diff: {OLD} -> {NEW}\n")
    assert _lines(text, "Services") == ["- k8s udp 10.200.1.100:5005  default/svc-udp svc-udpport"]
    assert _lines(text, "Backends") == ["- k8s default/svc-clusterip -> tcp 10.10.1.2:80  webpod2"]
    [(old_count, old_share)] = _sql(
        two_bundles,
        "select connections, share from backend_distribution where scope = 'all' and "
        f"bundle_id = '{OLD}' and dialed_ip = '10.200.1.216' and backend_ip = '10.10.3.2'",
    )
    assert old_count > 0
    shifts = _lines(text, "Distribution shifts")
    assert (
        f"~ tcp 10.200.1.216:9000 -> 10.10.3.2:80  share {100 * old_share:.0f}% -> 0% "
        f"({old_count} -> 0 connections)"
    ) in shifts
    assert all(x.startswith("~ tcp 10.200.1.216:9000 -> ") for x in shifts)  # that Service only
    rejected = _lines(text, "New rejected records")
    assert len(rejected) == 1 and rejected[0].startswith(
        "+ myk8s-worker/conntrack.txt (myk8s-worker)  1 new: "
    )
    # with its third backend's share gone to 0, that Service is now skewed: a new finding
    [finding] = _lines(text, "Findings")
    assert finding.startswith("+ warning distribution_skew ") and "10.200.1.216:9000" in finding

    # the other way round: what was removed is added, and nothing is newly rejected
    back = runner.invoke(app, ["diff", "--db", str(two_bundles), "--from", NEW, "--to", OLD])
    assert back.exit_code == 0, back.stderr
    assert _lines(back.stdout, "Services") == [
        "+ k8s udp 10.200.1.100:5005  default/svc-udp svc-udpport"
    ]
    assert _lines(back.stdout, "New rejected records") == []
    [resolved] = _lines(back.stdout, "Findings")
    assert resolved.startswith("- warning distribution_skew ") and "resolved: " in resolved


def _sql(db: Path, query: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query).fetchall()


def test_diff_needs_two_bundles(two_bundles: Path) -> None:
    result = runner.invoke(app, ["diff", "--db", str(two_bundles), "--to", OLD])
    assert result.exit_code == 2 and f"no bundle before '{OLD}'" in result.stderr
    result = runner.invoke(app, ["diff", "--db", str(two_bundles), "--from", "nope"])
    assert result.exit_code == 2 and "no bundle 'nope'" in result.stderr


def test_times_for_since_and_until() -> None:
    now = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)
    noon = datetime(2025, 1, 1, 12, 0)
    assert parse_time("2025-01-01T12:00:00Z") == noon
    assert parse_time("2025-01-01T13:00:00+01:00") == noon
    assert parse_time("2025-01-01 12:00") == noon  # no zone: UTC
    assert parse_time("20250101T120000Z") == noon  # a bundle's stamp
    assert parse_time("24h", now) == noon
    assert parse_time("1d", now) == noon
    for bad in ("yesterday", "12x", ""):
        with pytest.raises(ValueError):
            parse_time(bad, now)

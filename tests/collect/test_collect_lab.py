"""`natlens collect --netns` on the lab's namespace nodes, for real: the collected bundle is read
whole by analyze and its connections equal the lab's ground truth (issue 13, acceptance).

The lab (captures/lab) builds its kind-like cluster out of network namespaces and loads
kube-proxy's rules; `natlens collect` runs as its own process, the lab's clients send their
requests while it captures, and the bundle it writes is analyzed. The lab has no API server, so
the cluster objects kubectl would have saved are the lab's own (``lab_k8s.write_cluster``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.connections_checks import analyze, check_connections, check_pcap_distribution, rows

SKIP = None
if os.geteuid() != 0:
    SKIP = "needs root for network namespaces"
else:
    for tool in ("ip", "tcpdump", "conntrack", "iptables-restore", "timeout"):
        if shutil.which(tool) is None:
            SKIP = f"needs {tool}"
pytestmark = [pytest.mark.root, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

REPO = Path(__file__).resolve().parents[2]
DURATION_S = 12.0
REQUESTS = 10


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    """Build the lab, run `natlens collect --netns` while its clients send requests."""
    import lab_k8s
    import lab_truth
    from lab_model import PLANS, build_cluster
    from lab_netns import Topology
    from make_bundle import load_rules, run_scenarios, start_servers, stop_processes

    out = tmp_path_factory.mktemp("collected")
    cluster = build_cluster(PLANS["kind"])
    topo = Topology(cluster, ipvs_like=False, prefix=f"nlc{os.getpid()}")
    servers: list[subprocess.Popen[str]] = []
    collector: subprocess.Popen[str] | None = None
    try:
        topo.create()
        load_rules(topo)
        start_servers(topo, servers)
        targets = [f"{topo.node_ns(n)}={n.name}" for n in cluster.nodes]
        collector = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "collect",
                "--out",
                str(out),
                "--no-cluster",
                "--duration",
                str(DURATION_S),
                "--netns",
                *targets,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert collector.stderr is not None
        first = collector.stderr.readline()
        assert first.startswith("capturing on 4 node(s)"), first
        started = time.monotonic()
        truth, problems = run_scenarios(topo, REQUESTS)
        assert not problems, problems
        spare = DURATION_S - (time.monotonic() - started)
        assert spare > 1.0, f"the requests took longer than the capture ({spare:.1f} s left)"
        stdout, stderr = collector.communicate(timeout=DURATION_S + 120)
        assert collector.returncode == 0, first + stderr
    finally:
        if collector is not None and collector.poll() is None:
            collector.kill()
            collector.wait()
        stop_processes(servers)
        failed = topo.destroy()
    assert not failed, f"namespaces left: {failed}"
    bundle = Path(stdout.strip())
    lab_k8s.write_cluster(cluster, bundle / "cluster", False, os.uname().release)
    lab_truth.write_csv(bundle / "ground_truth.csv", truth)
    return bundle, truth


def test_bundle_layout_and_manifests(collected: tuple[Path, list[dict[str, str]]]) -> None:
    bundle, _ = collected
    assert bundle.parent.name.startswith("collected")
    assert len(bundle.name) == len("20250101T000000Z") and bundle.name.endswith("Z")
    nodes = sorted(p.name for p in bundle.iterdir() if p.is_dir() and p.name != "cluster")
    assert nodes == ["myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"]
    starts, ends = [], []
    for node in nodes:
        manifest = json.loads((bundle / node / "manifest.json").read_text())
        assert manifest["node"] == node and manifest["bundle"] == bundle.name
        assert manifest["access"]["method"] == "netns"
        assert manifest["kernel"] == os.uname().release
        assert manifest["clock_start"] < manifest["clock_end"]
        assert {"tcpdump", "conntrack", "ip", "iptables"} <= set(manifest["tools"])
        by_name = {c["name"]: c for c in manifest["commands"]}
        for name in ("tcpdump-any", "iptables-save", "ip-addr", "ip-route", "conntrack-extended"):
            assert by_name[name]["status"] == "ok", by_name[name]
            assert by_name[name]["read_by_analyze"], by_name[name]
        pcap = by_name["tcpdump-any"]
        assert "0 packets dropped by kernel" in pcap["stderr"]
        assert pcap["argv_here"][:4] == ["ip", "netns", "exec", manifest["access"]["target"]]
        # a tool the node lacks is recorded, not fatal (this kernel has no IPVS tooling)
        if "ipvsadm" in manifest["missing_tools"]:
            assert by_name["ipvsadm"]["status"] == "missing"
        starts.append(pcap["started"])
        ends.append(pcap["ended"])
        # every file left in the node folder is one analyze reads; the rest is under .unread
        kept = {p.name for p in (bundle / node).iterdir() if p.is_file()}
        read = {c["file"] for c in manifest["commands"] if c["read_by_analyze"]}
        assert kept == read | {"manifest.json"}
    # captures start together and stop together (within a second, across the four nodes)
    assert _spread(starts) < 1.0 and _spread(ends) < 2.0


def _spread(stamps: list[str]) -> float:
    from datetime import datetime

    times = [datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in stamps]
    return max(times) - min(times)


def test_analyze_reads_every_file_and_matches_ground_truth(
    collected: tuple[Path, list[dict[str, str]]], tmp_path: Path
) -> None:
    bundle, truth = collected
    # the --out folder, as a scheduled job analyzes it: a folder of timestamped bundles
    with analyze(bundle.parent, tmp_path / "collected.duckdb") as con:
        loaded = rows(
            con,
            "select source_file, status, kind from raw_ingest_files where node <> '-'",
        )
        outcome = check_connections(bundle, con)
        check_pcap_distribution(bundle, con)
        evidence = {r["evidence"] for r in rows(con, "select evidence from connections")}
        nodes = rows(con, "select count(distinct node) as n from raw_ingest_files")
        ids = rows(con, "select distinct bundle_id from raw_ingest_files")
    on_disk = {
        f"{bundle.name}/{p.relative_to(bundle).as_posix()}"
        for p in bundle.glob("myk8s-*/*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert {r["source_file"] for r in loaded if r["status"] == "loaded"} == on_disk, loaded
    assert outcome.total == len(truth) > 0
    assert not outcome.wrong and outcome.right_share == 1.0, outcome.summary()
    assert evidence == {"both"}
    assert nodes == [{"n": 5}]  # four nodes and the cluster objects
    assert ids == [{"bundle_id": bundle.name}]


def test_analyze_of_collected_bundle_as_is_equals_lab_truth_without_cluster(
    collected: tuple[Path, list[dict[str, str]]], tmp_path: Path
) -> None:
    """Without the cluster objects (no kubectl), every connection is still found and right."""
    bundle, _ = collected
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    shutil.rmtree(copy / "cluster")
    with analyze(copy, tmp_path / "no-cluster.duckdb") as con:
        outcome = check_connections(copy, con)
    assert not outcome.wrong, outcome.summary()
    assert outcome.right_share == 1.0, outcome.summary()

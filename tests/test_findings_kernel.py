"""Each finding fires where the real kernel produced its problem (network namespaces, root).

The topology is in tests/findings_netns.py: client -> node (nat rules) -> pods. Every scenario
makes its bundle from what the kernel recorded and checks the finding and its evidence.
"""

from __future__ import annotations

import os
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from tests.conftest import _lab_unavailable
from tests.findings_netns import (
    CLIENT_IP,
    NODE,
    NODE_CLIENT_SIDE,
    POD_A,
    POD_B,
    Lab,
    Recording,
    endpoint_slice,
    service,
)
from tests.test_findings import findings_of

pytestmark = pytest.mark.root
runner = CliRunner()
VIP_TCP, VIP_UDP, VIP_NEW, VIP_HAIRPIN = "10.96.0.10", "10.96.0.20", "10.96.0.30", "10.96.0.40"


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = _lab_unavailable()
    if reason:
        pytest.skip(reason)
    made = Lab(f"nlf{os.getpid() % 100000}")
    try:
        yield made
    finally:
        assert made.close() == []


def analyze(bundle: Path) -> list[dict[str, Any]]:
    db = bundle.parent / "n.duckdb"
    result = runner.invoke(app, ["analyze", str(bundle), "--db", str(db), "-q"])
    assert result.exit_code == 0, result.stderr
    return findings_of(db)


def conntrack_line(bundle: Path, pattern: str) -> str:
    """`conntrack.txt:N` of the one line of the node's conntrack -L that matches `pattern`."""
    lines = (bundle / NODE / "conntrack.txt").read_text().splitlines()
    hits = [no for no, line in enumerate(lines, 1) if re.search(pattern, line)]
    assert len(hits) == 1, (pattern, lines)
    return f"{bundle.name}/{NODE}/conntrack.txt:{hits[0]}"


def test_tiny_snat_port_range(lab: Lab, tmp_path: Path) -> None:
    """SNAT to two ports: two connections get them, the rest clash (insert_failed) and their
    SYNs go unanswered; the two ports are inside the NodePort range, without --random-fully."""
    bundle = tmp_path / "tiny-snat"
    lab.nat(
        [
            f"-A PREROUTING -d {VIP_TCP}/32 -p tcp --dport 80 -j DNAT --to-destination {POD_A}:80",
            "-A POSTROUTING -o eth-s -p tcp -j SNAT --to-source 10.99.2.1:30000-30001",
        ]
    )
    rec = Recording(lab, bundle)
    out = lab.run_py(
        lab.client,
        textwrap.dedent(f"""
            import socket
            held, failed = [], 0
            for _ in range(5):
                s = socket.socket(); s.settimeout(1.5)
                try:
                    s.connect(("{VIP_TCP}", 80)); held.append(s)
                except OSError:
                    failed += 1
            print(len(held), failed)
        """),
    )
    rec.stop([service("web", VIP_TCP, 80)], [endpoint_slice("web", [POD_A], 80)])
    assert out.split() == ["2", "3"]
    found = analyze(bundle)
    by_code = {f["finding"]: f for f in found}
    assert set(by_code) == {"conntrack_insert_failures", "snat_port_collision",
                            "nodeport_not_served"}, found  # fmt: skip

    failures = by_code["conntrack_insert_failures"]
    assert (failures["subject"], failures["severity"]) == ("conntrack -S insert_failed", "error")
    assert failures["count"] >= 3  # each unanswered SYN clashed again
    assert failures["evidence"].startswith(f"{bundle.name}/{NODE}/conntrack-S-1-before.txt:1-")
    assert f"{NODE}/conntrack-S-2-after.txt:1-" in failures["evidence"]
    assert "5 s" in failures["summary"]

    ports = by_code["snat_port_collision"]
    assert (ports["severity"], ports["count"]) == ("warning", 2)
    assert "30000-30001" in ports["summary"]
    for port in (30000, 30001):
        assert (
            conntrack_line(bundle, rf"dst=10.99.2.1 sport=80 dport={port}\b") in ports["evidence"]
        )

    syns = by_code["nodeport_not_served"]
    assert syns["severity"] == "error"
    assert syns["subject"] == f"svc default/web:p {VIP_TCP}:80/tcp"
    assert syns["count"] == 3
    assert f"{bundle.name}/{NODE}/eth-c.pcap frame " in syns["evidence"]
    assert float(re.search(r"about ([0-9.]+) s", syns["summary"])[1]) >= 3.0  # type: ignore[index]


def test_stale_and_untranslated_udp_conntrack(lab: Lab, tmp_path: Path) -> None:
    """A UDP client keeps sending from one port while its Service's only endpoint moves from
    POD_A to POD_B: its entry still goes to POD_A. Another sends to a VIP before its rule
    exists: its entry is never translated, and stays so after the rule is added."""
    bundle = tmp_path / "stale-udp"
    dnat = "-A PREROUTING -d {}/32 -p udp --dport 5005 -j DNAT --to-destination {}:5005"
    lab.nat([dnat.format(VIP_UDP, POD_A)])
    rec = Recording(lab, bundle)
    sender = textwrap.dedent("""
        import socket, sys, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", int(sys.argv[2])))
        s.sendto(b"ping", (sys.argv[1], 5005))
        print("sent", flush=True)
        end = time.monotonic() + float(sys.argv[3])
        while time.monotonic() < end:
            time.sleep(0.1); s.sendto(b"ping", (sys.argv[1], 5005))
    """)
    stale = lab.start(lab.client, ["python3", "-c", sender, VIP_UDP, "40001", "2.0"])
    never = lab.start(lab.client, ["python3", "-c", sender, VIP_NEW, "40002", "2.0"])
    for proc in (stale, never):  # both entries exist before the rules change
        assert proc.stdout is not None and proc.stdout.readline().strip() == "sent"
    time.sleep(0.3)
    # the endpoint moved (kube-proxy rewrote the rules) and VIP_NEW got its first endpoint
    lab.nat([dnat.format(VIP_UDP, POD_B), dnat.format(VIP_NEW, POD_B)])
    assert stale.wait(timeout=10) == 0 and never.wait(timeout=10) == 0
    rec.stop(
        [service("dns", VIP_UDP, 5005, "UDP"), service("fresh", VIP_NEW, 5005, "UDP")],
        [
            endpoint_slice("dns", [POD_B], 5005, "UDP"),
            endpoint_slice("fresh", [POD_B], 5005, "UDP"),
        ],
    )
    everything = analyze(bundle)
    # the rules now give POD_A no share, yet the stale entry's connection went there
    skews = [f for f in everything if f["finding"] == "distribution_skew"]
    assert sorted(f["node"] for f in skews) == ["*", NODE]  # all nodes, and the node
    [skew] = [f for f in skews if f["node"] == NODE]
    assert skew["subject"] == f"svc default/dns:p {VIP_UDP}:5005/udp"
    assert f"rules give no share: {POD_A}:5005" in skew["summary"]
    found = [f for f in everything if f["finding"] == "stale_udp_conntrack"]
    assert len(found) == 2, found
    moved, untranslated = sorted(found, key=lambda f: "not translated" in f["subject"])
    assert moved["subject"] == f"svc default/dns:p -> {POD_A}:5005"
    assert moved["evidence"] == conntrack_line(bundle, rf"sport=40001 .*src={POD_A} ")
    assert "kubectl endpoints, the node's rules" in moved["summary"]
    assert untranslated["subject"] == f"svc default/fresh:p {VIP_NEW}:5005/udp (not translated)"
    assert untranslated["evidence"] == conntrack_line(bundle, rf"sport=40002 .*src={VIP_NEW} ")
    assert {f["severity"] for f in found} == {"error"}


def test_hairpin_without_masquerade(lab: Lab, tmp_path: Path) -> None:
    """A pod dials its own Service and lands on itself; nothing masquerades it, so the packet
    comes back from its own address and its kernel drops it: the SYNs go unanswered."""
    bundle = tmp_path / "hairpin"
    lab.nat(
        [f"-A PREROUTING -d {VIP_HAIRPIN}/32 -p tcp --dport 80 -j DNAT --to-destination {POD_A}:80"]
    )
    rec = Recording(lab, bundle)
    code = textwrap.dedent(f"""
        import socket
        s = socket.socket(); s.settimeout(1.5); s.bind(("{POD_A}", 0))
        try:
            s.connect(("{VIP_HAIRPIN}", 80)); print("connected")
        except OSError:
            print("timeout")
    """)
    assert lab.run_py(lab.pods, code).strip() == "timeout"
    rec.stop([service("self", VIP_HAIRPIN, 80)], [endpoint_slice("self", [POD_A], 80)])
    found = {f["finding"]: f for f in analyze(bundle)}
    hairpin = found["hairpin"]
    assert hairpin["subject"] == f"{POD_A} -> svc default/self:p"
    assert hairpin["count"] == 1
    assert "1 of them never got a reply" in hairpin["summary"]
    assert conntrack_line(bundle, rf"src={POD_A} dst={VIP_HAIRPIN}") in hairpin["evidence"]
    assert found["nodeport_not_served"]["subject"] == f"svc default/self:p {VIP_HAIRPIN}:80/tcp"


def test_external_traffic_policy_local_source_lost(lab: Lab, tmp_path: Path) -> None:
    """The Service says externalTrafficPolicy Local, but the node masquerades NodePort traffic
    (rules written for Cluster): the backend sees the node's address, not the client's."""
    bundle = tmp_path / "etp-local"
    lab.nat(
        [
            f"-A PREROUTING -d {NODE_CLIENT_SIDE}/32 -p tcp --dport 31080 -j DNAT "
            f"--to-destination {POD_A}:80",
            "-A POSTROUTING -o eth-s -j MASQUERADE",
        ]
    )
    rec = Recording(lab, bundle)
    code = f"import socket; socket.create_connection(('{NODE_CLIENT_SIDE}', 31080), 2).close()"
    lab.run_py(lab.client, code)
    rec.stop(
        [service("local", "10.96.0.50", 80, node_port=31080, policy="Local")],
        [endpoint_slice("local", [POD_A], 80)],
    )
    found = {f["finding"]: f for f in analyze(bundle)}
    lost = found["client_source_lost"]
    assert lost["subject"] == "svc default/local:p NodePort 31080/tcp"
    assert lost["count"] == 1
    assert "reached their backend from 10.99.2.1" in lost["summary"]
    line = conntrack_line(bundle, rf"src={CLIENT_IP} dst={NODE_CLIENT_SIDE} .*dport=31080")
    assert lost["evidence"].endswith(line)

"""collect's pure parts: the facts script, manifests recognised by content, the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from pipeline.bundle import sniff
from pipeline.cli import app
from pipeline.collect.commands import STATE, conntrack_events, tcpdump, tools_needed
from pipeline.collect.facts import facts_argv, parse_facts
from pipeline.collect.manifest import NodeManifest, is_manifest


def test_facts_script_on_this_machine_names_present_and_missing_tools() -> None:
    argv = facts_argv(["sh", "no-such-tool-natlens"])
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    facts = parse_facts(proc.stdout)
    assert facts.clock is not None and facts.clock.endswith("Z")
    assert (
        facts.kernel
        == subprocess.run(
            ["uname", "-r"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    assert facts.tools == {"sh"}


def test_parse_facts_keeps_version_lines() -> None:
    facts = parse_facts(
        "clock 2025-01-01T00:00:00.1Z\nkernel 6.1.0\ntool ip\n"
        "version ip ip utility, iproute2-6.1.0\n"
    )
    assert facts.versions == {"ip": "ip utility, iproute2-6.1.0"}
    assert facts.tools == {"ip"}


def test_recorders_stop_on_the_node_after_the_duration() -> None:
    cmd = tcpdump("eth0", 7.5, "udp")
    assert list(cmd.argv[:5]) == ["timeout", "-s", "INT", "7.5", "tcpdump"]
    assert cmd.argv[-1] == "udp" and "LINUX_SLL2" not in cmd.argv
    assert "LINUX_SLL2" in tcpdump("any", 1, None).argv
    assert "timeout" in conntrack_events(3).needs
    assert {"tcpdump", "conntrack", "iptables-save", "ipset", "ip"} <= set(
        tools_needed([cmd, *STATE])
    )


def test_manifest_is_recognised_by_content_and_skipped_by_analyze(tmp_path: Path) -> None:
    m = NodeManifest("20250101T000000Z", "n1", {"method": "local"}, {})
    text = m.to_json()
    assert is_manifest(text.encode())
    found = sniff(tmp_path / "whatever.json", text.encode())
    assert found.kind is None and "manifest" in (found.reason or "")
    other = json.dumps({"natlens": 1}).encode()
    assert not is_manifest(other)


def test_cli_needs_exactly_one_node_access(tmp_path: Path) -> None:
    runner = CliRunner()
    none = runner.invoke(app, ["collect", "--out", str(tmp_path)])
    assert none.exit_code == 2 and "exactly one of" in none.stderr
    two = runner.invoke(app, ["collect", "--out", str(tmp_path), "--local", "--netns", "x"])
    assert two.exit_code == 2
    bad = runner.invoke(app, ["collect", "--out", str(tmp_path), "--netns", "x=.y"])
    assert bad.exit_code == 2 and "folder name" in bad.stderr
    iface = runner.invoke(app, ["collect", "--out", str(tmp_path), "--local", "-i", "../x"])
    assert iface.exit_code == 2 and "interface" in iface.stderr
    assert list(tmp_path.iterdir()) == []


def test_unreachable_namespace_is_recorded_and_exits_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "collect",
            "--out",
            str(tmp_path),
            "--no-cluster",
            "--duration",
            "0.5",
            "--netns",
            "natlens-no-such-ns-x",
        ],
    )
    assert result.exit_code == 3, result.stderr
    assert "natlens-no-such-ns-x: unreachable" in result.stderr
    (bundle,) = tmp_path.iterdir()
    manifest = json.loads((bundle / "natlens-no-such-ns-x" / "manifest.json").read_text())
    assert manifest["reachable"] is False and manifest["error"]

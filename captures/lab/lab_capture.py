"""Recording on every node: packet captures and conntrack events around the traffic, then the
state dumps (conntrack tables, iptables-save, ipset list, ip -j addr/route).

Captures start before the first request and stop after the last one with SIGINT, and the
generator waits for each process, so tcpdump flushes its pcap and conntrack its output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lab_model import Node
from lab_netns import Topology
from lab_sh import LabError, in_ns, run_in

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

STATE_DUMPS = {
    "conntrack.txt": ["conntrack", "-L"],
    "conntrack-extended.txt": ["conntrack", "-L", "-o", "extended"],
    "iptables-save.txt": ["iptables-save"],
    "ipset.txt": ["ipset", "list"],
    "ip-addr.json": ["ip", "-j", "addr"],
    "ip-route.json": ["ip", "-j", "route"],
}
NFT_DUMPS = {
    "nft-ruleset.txt": ["nft", "list", "ruleset"],
    "nft-ruleset.json": ["nft", "-j", "list", "ruleset"],
}  # kube-proxy nftables mode only
EVENTS_FILE = "conntrack-events.txt"
EVENTS_CMD = ["conntrack", "-E", "-o", "timestamp"]


def tcpdump_cmd(iface: str, path: Path | str) -> list[str]:
    cmd = ["tcpdump", "-i", iface, "-n", "-U", "-B", "16384", "--immediate-mode", "-w", str(path)]
    return cmd + (["-y", "LINUX_SLL2"] if iface == "any" else [])


@dataclass
class Recording:
    """One background recorder (tcpdump or conntrack -E) on one node."""

    node: str
    what: str  # interface name, or "conntrack-events"
    path: Path
    proc: subprocess.Popen[bytes]
    sink: IO[bytes] | None = None
    stderr_lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    def start_reader(self) -> None:
        def read() -> None:
            assert self.proc.stderr is not None
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.stderr_lines.append(line)
                if "listening on" in line:
                    self.ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()


@dataclass
class Recorder:
    topo: Topology
    out: Path
    recordings: list[Recording] = field(default_factory=list)

    def interfaces(self, node: Node) -> list[str]:
        return ["eth0", *(p.veth for p in self.topo.cluster.pods_on(node.name)), "any"]

    def start(self) -> None:
        for node in self.topo.cluster.nodes:
            folder = self.out / node.name
            folder.mkdir(parents=True, exist_ok=True)
            ns = self.topo.node_ns(node)
            sink = (folder / EVENTS_FILE).open("wb")
            proc = subprocess.Popen(in_ns(ns, EVENTS_CMD), stdout=sink, stderr=subprocess.PIPE)
            rec = Recording(node.name, "conntrack-events", folder / EVENTS_FILE, proc, sink)
            rec.ready.set()  # conntrack -E prints nothing until the first event
            self._add(rec)
            for iface in self.interfaces(node):
                path = folder / f"{iface}.pcap"
                cmd = in_ns(ns, tcpdump_cmd(iface, path))
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                self._add(Recording(node.name, iface, path, proc))
        deadline = time.monotonic() + READY_TIMEOUT_S
        for rec in self.recordings:
            if not rec.ready.wait(max(0.0, deadline - time.monotonic())):
                raise LabError(
                    f"{rec.node}: tcpdump on {rec.what} did not start: {rec.stderr_lines}"
                )
        time.sleep(0.3)  # give conntrack -E time to subscribe to the netlink group

    def _add(self, rec: Recording) -> None:
        rec.start_reader()
        self.recordings.append(rec)

    def stop(self) -> list[str]:
        """SIGINT every recorder, wait for it, and return one summary line per recorder."""
        for rec in self.recordings:
            if rec.proc.poll() is None:
                rec.proc.send_signal(signal.SIGINT)
        summary = []
        for rec in self.recordings:
            try:
                rec.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                rec.proc.kill()
                rec.proc.wait()
                raise LabError(f"{rec.node}: {rec.what} recorder did not stop on SIGINT") from None
            if rec.reader is not None:
                rec.reader.join(timeout=STOP_TIMEOUT_S)
            if rec.sink is not None:
                rec.sink.close()
            if rec.path.exists():  # tcpdump writes as its own user after dropping root
                os.chown(rec.path, os.getuid(), os.getgid())
            tail = "; ".join(line for line in rec.stderr_lines if "listening on" not in line)
            summary.append(f"{rec.node} {rec.what}: {tail}")
            if "dropped by kernel" in tail and " 0 packets dropped by kernel" not in tail:
                raise LabError(f"{rec.node}: tcpdump on {rec.what} dropped packets: {tail}")
        self.recordings = []
        return summary

    def kill(self) -> None:
        """Stop whatever is still running (used on failure paths)."""
        for rec in self.recordings:
            if rec.proc.poll() is None:
                rec.proc.kill()
                rec.proc.wait()
            if rec.sink is not None and not rec.sink.closed:
                rec.sink.close()
        self.recordings = []


def dump_state(
    topo: Topology, node: Node, folder: Path, extra: dict[str, list[str]] | None = None
) -> dict[str, str]:
    """Run the state dumps (and `extra`) on ``node``, write them into ``folder``."""
    texts = {}
    for name, cmd in {**STATE_DUMPS, **(extra or {})}.items():
        text = run_in(topo.node_ns(node), cmd)
        (folder / name).write_text(text)
        texts[name] = text
    return texts

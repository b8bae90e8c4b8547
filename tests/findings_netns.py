"""A one-node 'cluster' in network namespaces, for findings the real kernel must produce.

Three namespaces, named ``<prefix>-c``, ``<prefix>-n`` and ``<prefix>-s``: a client (10.99.1.2),
the node (10.99.1.1 towards the client, 10.99.2.1 towards the pods, forwarding) and the pods'
side (10.99.2.2 and 10.99.2.3, one namespace holding both pod addresses, so one server answers
for both). A scenario loads nat rules on the node, sends traffic, and `record` writes what a
bundle holds: `conntrack -S` before and after, `conntrack -L`, `iptables-save`, `ip -j addr`,
pcaps of the node's two interfaces, and the Services and EndpointSlices the scenario declares
(what kubectl would print for them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NODE = "node1"
CLIENT_IP, NODE_CLIENT_SIDE, NODE_POD_SIDE = "10.99.1.2", "10.99.1.1", "10.99.2.1"
POD_A, POD_B = "10.99.2.2", "10.99.2.3"

SERVER = """
import socket, sys, threading
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 80)); tcp.listen(64)
held = []
def serve_udp(address):
    # one socket per pod address: a reply leaves from the address the datagram was sent to
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind((address, 5005))
    while True:
        data, peer = udp.recvfrom(2048)
        udp.sendto(b"pong " + data, peer)
for address in sys.argv[1:]:
    threading.Thread(target=serve_udp, args=(address,), daemon=True).start()
print("ready", flush=True)
while True:
    conn, _ = tcp.accept(); held.append(conn)
"""


def sh(*cmd: str, ns: str | None = None, data: str | None = None) -> str:
    full = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    return subprocess.run(full, input=data, capture_output=True, text=True, check=True).stdout


class Lab:
    """The namespaces; `close()` deletes them and stops every process started here."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.client, self.node, self.pods = f"{prefix}-c", f"{prefix}-n", f"{prefix}-s"
        self.procs: list[subprocess.Popen[str]] = []
        self.created: list[str] = []
        for ns in (self.client, self.node, self.pods):
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        self._link(self.client, "eth0", f"{CLIENT_IP}/24", self.node, "eth-c", NODE_CLIENT_SIDE)
        self._link(self.pods, "eth0", f"{POD_A}/24", self.node, "eth-s", NODE_POD_SIDE)
        sh("ip", "addr", "add", f"{POD_B}/24", "dev", "eth0", ns=self.pods)
        sh("ip", "route", "add", "default", "via", NODE_CLIENT_SIDE, ns=self.client)
        sh("ip", "route", "add", "default", "via", NODE_POD_SIDE, ns=self.pods)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=self.node)
        # why: redirects would teach the pod a shorter path for a hairpin; kube nodes send none
        sh("sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0", ns=self.node)
        sh("sysctl", "-qw", "net.ipv4.conf.eth-s.send_redirects=0", ns=self.node)
        # why: like a node's route to its upstream router; a datagram to a VIP without rules
        # is routed (and its conntrack entry confirmed), not dropped as unroutable
        sh("ip", "route", "add", "default", "via", "10.99.1.254", "dev", "eth-c", ns=self.node)
        server = self.start(self.pods, [sys.executable, "-c", SERVER, POD_A, POD_B])
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"

    def _link(self, a: str, a_if: str, a_addr: str, b: str, b_if: str, b_ip: str) -> None:
        sh("ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if,
           "netns", b)  # fmt: skip
        sh("ip", "addr", "add", a_addr, "dev", a_if, ns=a)
        sh("ip", "addr", "add", f"{b_ip}/24", "dev", b_if, ns=b)
        sh("ip", "link", "set", a_if, "up", ns=a)
        sh("ip", "link", "set", b_if, "up", ns=b)

    def start(self, ns: str, cmd: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def nat(self, rules: list[str]) -> None:
        """Replace the node's nat table with these rules (iptables-save syntax)."""
        text = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        text += ":POSTROUTING ACCEPT [0:0]\n" + "".join(r + "\n" for r in rules) + "COMMIT\n"
        sh("iptables-restore", ns=self.node, data=text)

    def run_py(self, ns: str, code: str, timeout: float = 60) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        ).stdout

    def close(self) -> list[str]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()  # waits, and closes its pipes
        failed = []
        for ns in self.created:
            if subprocess.run(["ip", "netns", "del", ns], check=False).returncode != 0:
                failed.append(ns)
        return failed


class Recording:
    """tcpdump on the node's interfaces and `conntrack -S` before; the state dumps after."""

    def __init__(self, lab: Lab, bundle: Path) -> None:
        self.lab = lab
        self.folder = bundle / NODE
        self.folder.mkdir(parents=True)
        (self.folder / "conntrack-S-1-before.txt").write_text(sh("conntrack", "-S", ns=lab.node))
        self.dumps: list[subprocess.Popen[str]] = []
        for iface in ("eth-c", "eth-s"):
            path = self.folder / f"{iface}.pcap"
            cmd = ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-w", str(path)]
            proc = lab.start(lab.node, cmd)
            assert proc.stderr is not None
            while "listening on" not in proc.stderr.readline():
                assert proc.poll() is None, "tcpdump did not start"
            self.dumps.append(proc)

    def stop(self, services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> None:
        time.sleep(0.3)
        for proc in self.dumps:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
        for path in self.folder.glob("*.pcap"):
            os.chown(path, os.getuid(), os.getgid())
        ns = self.lab.node
        (self.folder / "conntrack.txt").write_text(sh("conntrack", "-L", ns=ns))
        (self.folder / "conntrack-S-2-after.txt").write_text(sh("conntrack", "-S", ns=ns))
        (self.folder / "iptables-save.txt").write_text(sh("iptables-save", ns=ns))
        (self.folder / "ip-addr.json").write_text(sh("ip", "-j", "addr", ns=ns))
        (self.folder / "ip-route.json").write_text(sh("ip", "-j", "route", ns=ns))
        cluster = self.folder.parent / "cluster"
        cluster.mkdir()
        for name, items in (("services.json", services), ("endpointslices.json", slices)):
            (cluster / name).write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                                    "items": items}, indent=1))  # fmt: skip


def service(
    name: str,
    cluster_ip: str,
    port: int,
    proto: str = "TCP",
    node_port: int | None = None,
    policy: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "NodePort" if node_port else "ClusterIP",
        "clusterIP": cluster_ip,
        "ports": [{"name": "p", "protocol": proto, "port": port, "targetPort": port}],
    }
    if node_port:
        spec["ports"][0]["nodePort"] = node_port
        spec["externalTrafficPolicy"] = policy or "Cluster"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": "default", "name": name},
        "spec": spec,
    }


def endpoint_slice(
    name: str, addresses: list[str], port: int, proto: str = "TCP"
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": "default",
            "name": f"{name}-abcde",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [a], "conditions": {"ready": True}, "nodeName": NODE} for a in addresses
        ],
        "ports": [{"name": "p", "protocol": proto, "port": port}],
    }

"""Ground truth: one row per request, from what the client and the backend themselves saw.

The client knows its own ip:port and what it dialed; the backend's reply body (whoami shape)
names the backend pod (``Hostname:``), its address (the pod's IPv4 in the ``IP:`` lines) and the
peer it saw (``RemoteAddr:``, i.e. the source after any SNAT). The backend port is the service
port's targetPort. The DNAT node comes from the topology (the node whose rules the first packet
meets with the service address still in it: the client pod's node, or the node owning the
dialed address for the external client).
"""

from __future__ import annotations

import csv
import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lab_model import Cluster, Scenario

COLUMNS = [
    "request_id",
    "scenario",
    "proto",
    "client",
    "client_ip",
    "client_port",
    "dialed_ip",
    "dialed_port",
    "service",
    "backend_pod",
    "backend_ip",
    "backend_port",
    "remote_ip",
    "remote_port",
    "snat_class",
    "dnat_node",
    "ts_start",
    "ts_end",
]


@dataclass(frozen=True)
class Whoami:
    hostname: str
    ips: tuple[str, ...]
    remote_ip: str
    remote_port: int

    @property
    def pod_ipv4(self) -> str | None:
        for ip in self.ips:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                continue
            if addr.version == 4 and not addr.is_loopback:
                return ip
        return None


def parse_whoami(body: str) -> Whoami | None:
    """The identity lines of a whoami-shaped body, or None if they are not all there."""
    hostname = None
    ips: list[str] = []
    remote = None
    for line in body.splitlines():
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if key == "Hostname" and hostname is None:
            hostname = value.strip()
        elif key == "IP":
            ips.append(value.strip())
        elif key == "RemoteAddr" and remote is None:
            remote = value.strip()
    if not hostname or remote is None:
        return None
    host, _, port = remote.rpartition(":")
    if not host or not port.isdigit():
        return None
    return Whoami(hostname, tuple(ips), host.strip("[]"), int(port))


def snat_class(cluster: Cluster, client_ip: str, remote_ip: str) -> str:
    if remote_ip == client_ip:
        return "none"
    if cluster.node_of_ip(remote_ip) is not None:
        return "node_ip"
    if cluster.is_pod_gateway(remote_ip):
        return "pod_gateway"
    return "other"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def rows_for(
    cluster: Cluster, scenario: Scenario, client_output: str, first_id: int
) -> tuple[list[dict[str, str]], list[str]]:
    """Ground-truth rows for one scenario's client output, and the problems found."""
    rows: list[dict[str, str]] = []
    problems: list[str] = []
    svc = cluster.service(scenario.service)
    port = next(p for p in svc.ports if p.name == scenario.port_name)
    for n, line in enumerate(client_output.splitlines()):
        rec = json.loads(line)
        rid = first_id + n
        who = parse_whoami(rec["body"]) if rec.get("body") else None
        if rec.get("error") or who is None or who.pod_ipv4 is None:
            problems.append(f"{scenario.name} request {rec.get('seq')}: {rec.get('error')!r}")
            continue
        expected = expected_snat_class(cluster, scenario, who.hostname)
        got = snat_class(cluster, rec["client_ip"], who.remote_ip)
        if got != expected:
            problems.append(
                f"{scenario.name} request {rec.get('seq')}: backend {who.hostname} saw "
                f"{who.remote_ip}:{who.remote_port} ({got}), expected SNAT class {expected}"
            )
        rows.append(
            {
                "request_id": str(rid),
                "scenario": scenario.name,
                "proto": scenario.proto,
                "client": scenario.client,
                "client_ip": rec["client_ip"],
                "client_port": str(rec["client_port"]),
                "dialed_ip": scenario.dialed_ip,
                "dialed_port": str(scenario.dialed_port),
                "service": f"{svc.namespace}/{svc.name}:{port.name}",
                "backend_pod": who.hostname,
                "backend_ip": who.pod_ipv4,
                "backend_port": str(port.target_port),
                "remote_ip": who.remote_ip,
                "remote_port": str(who.remote_port),
                "snat_class": got,
                "dnat_node": scenario.dnat_node,
                "ts_start": iso(rec["ts_start"]),
                "ts_end": iso(rec["ts_end"]),
            }
        )
    return rows, problems


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def expected_snat_class(cluster: Cluster, scenario: Scenario, backend_pod: str) -> str:
    """What kube-proxy's rules must have done to a request, given the backend chosen.

    NodePorts and external clients are masqueraded (to the address of the interface towards
    the backend: the pod gateway when the backend is on the DNAT node, else the node IP);
    a pod reaching a cluster IP keeps its address unless it lands on itself (hairpin).
    """
    backend = cluster.pod(backend_pod)
    cluster_ips = {s.cluster_ip for s in cluster.services}
    client_node = cluster.client_node(scenario.client)
    if scenario.dialed_ip not in cluster_ips or client_node is None:
        return "pod_gateway" if backend.node == scenario.dnat_node else "node_ip"
    return "pod_gateway" if backend_pod == scenario.client else "none"

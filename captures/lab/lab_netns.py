"""Build and tear down the lab's network namespaces: nothing is created in the root namespace.

Layout (kind-like, kindnet ptp routing):

- ``<prefix>-net``: the "docker network": a bridge holding the plan's node gateway (kind:
  172.18.0.1/16), one port per node and
  one for the external client. It does not forward (ip_forward=0) and has no other interface,
  so no packet can leave the lab.
- one namespace per node: ``eth0`` on the bridge (kind: 172.18.0.X/16, default via 172.18.0.1), one
  veth per pod holding the pod gateway as /32, a host route per pod, and a route per other
  node's pod CIDR via that node's IP.
- one namespace per pod: ``eth0`` with the pod IP /24 and the ptp routes (gateway .1).
- one namespace for the external client (``mypc``) on the node network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lab_model import Cluster, Node, Pod, mac_for, short_hash
from lab_sh import LabError, ip_batch, run, sysctl

NET_KEY = "net"
BRIDGE = "br-" + short_hash("kind", 12)  # docker names network bridges br-<12 hex of the id>


def default_prefix() -> str:
    """Namespace names are unique per generator process, so concurrent runs never collide."""
    return f"nl{os.getpid()}"


def bridge_port(key: str) -> str:
    return "veth" + short_hash(f"port:{key}", 7)


@dataclass
class Topology:
    cluster: Cluster
    ipvs_like: bool
    prefix: str = field(default_factory=default_prefix)
    created: list[str] = field(default_factory=list)

    def ns(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    def node_ns(self, node: Node) -> str:
        return self.ns(node.key)

    def client_ns(self, client: str) -> str:
        ext = self.cluster.external
        return self.ns(ext.key) if client == ext.name else self.ns(self.cluster.pod(client).key)

    def all_keys(self) -> list[str]:
        c = self.cluster
        return [NET_KEY, *(n.key for n in c.nodes), *(p.key for p in c.pods), c.external.key]

    def create(self) -> None:
        existing = set(run(["ip", "netns", "list"]).split())
        for key in self.all_keys():
            name = self.ns(key)
            if name in existing:
                raise LabError(f"network namespace {name} already exists (a previous --keep run?)")
            run(["ip", "netns", "add", name])
            self.created.append(name)
        self._sysctls()
        self._node_network()
        for node in self.cluster.nodes:
            self._node(node)
        for pod in self.cluster.pods:
            self._pod(pod)

    def destroy(self) -> list[str]:
        """Delete every namespace this topology created; returns the ones that failed."""
        failed = []
        for name in reversed(self.created):
            try:
                run(["ip", "netns", "del", name])
            except LabError:
                failed.append(name)
        self.created = [n for n in self.created if n in failed]
        return failed

    def _sysctls(self) -> None:
        quiet = {
            "net.ipv4.conf.all.rp_filter": "0",
            "net.ipv4.conf.default.rp_filter": "0",
            "net.ipv6.conf.all.accept_dad": "0",
            "net.ipv6.conf.default.accept_dad": "0",
        }
        for key in self.all_keys():
            forward = "1" if any(n.key == key for n in self.cluster.nodes) else "0"
            settings = {**quiet, "net.ipv4.ip_forward": forward}
            if forward == "1" and self.ipvs_like:
                # kube-proxy --ipvs-strict-arp (the seed's strictARP: true)
                settings["net.ipv4.conf.all.arp_ignore"] = "1"
                settings["net.ipv4.conf.all.arp_announce"] = "2"
            sysctl(self.ns(key), settings)

    def _node_network(self) -> None:
        plan = self.cluster.plan
        net = self.ns(NET_KEY)
        cmds = [
            "link set lo up",
            f"link add {BRIDGE} type bridge",
            f"link set {BRIDGE} address {mac_for('bridge')}",
            f"addr add {plan.node_gateway}/{plan.node_prefixlen} dev {BRIDGE}",
            f"link set {BRIDGE} up",
        ]
        for key in [*(n.key for n in self.cluster.nodes), self.cluster.external.key]:
            port = bridge_port(key)
            cmds += [
                f"link add {port} type veth peer name eth0 netns {self.ns(key)}",
                f"link set {port} address {port_mac(key)}",
                f"link set {port} master {BRIDGE}",
                f"link set {port} up",
            ]
        ip_batch(net, cmds)
        ext = self.cluster.external
        ip_batch(
            self.ns(ext.key),
            [
                "link set lo up",
                f"link set eth0 address {ext.mac}",
                f"addr add {ext.ip}/{plan.node_prefixlen} dev eth0",
                "link set eth0 up",
                f"route add default via {plan.node_gateway} dev eth0",
            ],
        )

    def _node(self, node: Node) -> None:
        plan = self.cluster.plan
        cmds = [
            "link set lo up",
            f"link set eth0 address {node.mac}",
            f"addr add {node.ip}/{plan.node_prefixlen} dev eth0",
            "link set eth0 up",
            f"route add default via {plan.node_gateway} dev eth0",
        ]
        for pod in self.cluster.pods_on(node.name):
            cmds += [
                f"link add {pod.veth} type veth peer name eth0 netns {self.ns(pod.key)}",
                f"link set {pod.veth} address {port_mac(pod.key)}",
                f"addr add {node.gateway}/32 dev {pod.veth}",
                f"link set {pod.veth} up",
            ]
        for other in self.cluster.nodes:
            if other.name != node.name:
                cmds.append(f"route add {other.pod_cidr} via {other.ip} dev eth0")
        if self.ipvs_like:
            # kube-proxy's dummy device; this kernel has no dummy driver, so an unused, down
            # bridge stands in (same flags <BROADCAST,NOARP>, addresses still local).
            cmds += ["link add kube-ipvs0 type bridge", "link set kube-ipvs0 arp off multicast off"]
            cmds += [f"addr add {s.cluster_ip}/32 dev kube-ipvs0" for s in self.cluster.services]
        ip_batch(self.node_ns(node), cmds)

    def _pod(self, pod: Pod) -> None:
        node = self.cluster.node(pod.node)
        prefixlen = node.pod_cidr.split("/")[1]
        gw = node.gateway
        ip_batch(
            self.ns(pod.key),
            [
                "link set lo up",
                f"link set eth0 address {pod.mac}",
                f"addr add {pod.ip}/{prefixlen} dev eth0",
                "link set eth0 up",
                # the ptp plugin replaces the connected route with routes via the gateway
                f"route del {node.pod_cidr} dev eth0",
                f"route add {gw} dev eth0 scope link src {pod.ip}",
                f"route add {node.pod_cidr} via {gw} dev eth0 src {pod.ip}",
                f"route add default via {gw} dev eth0",
            ],
        )
        ip_batch(self.node_ns(node), [f"route add {pod.ip}/32 dev {pod.veth} scope host"])


def port_mac(key: str) -> str:
    """MAC of the peer end of a namespace's eth0 (bridge port or pod veth host side)."""
    return mac_for(f"port:{key}")

"""The lab cluster: every name and address, the services, their endpoints and the scenarios.

Everything here is deterministic: the same names, addresses, MACs and veth names on every run.
The shape follows the seed write-up (kind cluster ``myk8s``, kindnet ptp routing). The addresses
come from an addressing plan: ``kind`` is the seed's (pod CIDR 10.10.0.0/16, service CIDR
10.200.1.0/24, node network 172.18.0.0/16); ``kubeadm`` is kubeadm's and minikube's defaults (pod
CIDR 10.244.0.0/16, service CIDR 10.96.0.0/12, node network 192.168.49.0/24), with other ports and
pod host numbers, so that tests show natlens assumes none of the seed's numbers.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

CLUSTER_NAME = "myk8s"
K8S_VERSION = "v1.31.0"
HTTP_TARGET_PORT = 80
UDP_TARGET_PORT = 5005


def short_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def mac_for(key: str) -> str:
    """A stable locally administered unicast MAC for an interface key."""
    raw = bytearray(hashlib.sha256(f"mac:{key}".encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True)
class Plan:
    """An addressing plan: every address and port number of the lab cluster."""

    name: str
    pod_cidr: str
    service_cidr: str
    node_net: str
    node_gateway: str  # the docker bridge address of the kind network
    node_ips: tuple[str, str, str, str]  # control-plane, worker, worker2, worker3
    node_pod_cidrs: tuple[str, str, str, str]  # same order
    pod_ips: tuple[str, str, str, str]  # net-pod (control-plane), webpod1..3 (worker..worker3)
    service_ips: tuple[str, str, str]  # kubernetes, svc-clusterip, svc-udp
    external_ip: str
    http_port: int  # svc-clusterip's port
    node_port: int

    @property
    def node_prefixlen(self) -> str:
        return self.node_net.split("/")[1]


PLANS = {
    "kind": Plan(
        "kind",
        "10.10.0.0/16",
        "10.200.1.0/24",
        "172.18.0.0/16",
        "172.18.0.1",
        ("172.18.0.4", "172.18.0.5", "172.18.0.2", "172.18.0.3"),
        ("10.10.0.0/24", "10.10.2.0/24", "10.10.1.0/24", "10.10.3.0/24"),
        ("10.10.0.5", "10.10.2.2", "10.10.1.2", "10.10.3.2"),
        ("10.200.1.1", "10.200.1.216", "10.200.1.100"),
        "172.18.0.6",
        9000,
        30001,
    ),
    "kubeadm": Plan(
        "kubeadm",
        "10.244.0.0/16",
        "10.96.0.0/12",
        "192.168.49.0/24",
        "192.168.49.1",
        ("192.168.49.2", "192.168.49.3", "192.168.49.4", "192.168.49.5"),
        ("10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"),
        ("10.244.0.17", "10.244.1.23", "10.244.2.31", "10.244.3.9"),
        ("10.96.0.1", "10.103.45.17", "10.110.3.9"),
        "192.168.49.100",
        8080,
        31080,
    ),
}


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    pod_cidr: str
    role: str  # "control-plane" or "worker"
    key: str  # short key used in namespace names

    @property
    def gateway(self) -> str:
        """The pod gateway: first host of the pod CIDR, held by every pod veth on this node."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    @property
    def mac(self) -> str:
        """Docker derives a container MAC from its IPv4 address (02:42 + the four bytes)."""
        return "02:42:" + ":".join(f"{int(b):02x}" for b in self.ip.split("."))


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    node: str
    ip: str
    labels: tuple[tuple[str, str], ...]
    serves: bool  # runs the whoami/UDP echo backend
    key: str

    @property
    def veth(self) -> str:
        """Host-side veth name, shaped like the ptp CNI plugin's ("veth" + 8 hex)."""
        return "veth" + short_hash(f"{self.namespace}/{self.name}", 8)

    @property
    def mac(self) -> str:
        return mac_for(f"pod:{self.namespace}/{self.name}")


@dataclass(frozen=True)
class External:
    """A container on the kind docker network that is not a node (the seed's ``mypc``)."""

    name: str
    ip: str
    key: str

    @property
    def mac(self) -> str:
        return "02:42:" + ":".join(f"{int(b):02x}" for b in self.ip.split("."))


@dataclass(frozen=True)
class ServicePort:
    name: str
    proto: str  # "tcp" | "udp"
    port: int
    target_port: int
    node_port: int | None = None


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str  # ClusterIP | NodePort
    cluster_ip: str
    ports: tuple[ServicePort, ...]
    selector: tuple[tuple[str, str], ...] | None
    static_endpoints: tuple[str, ...] = ()  # addresses for selector-less services

    def port_name(self, port: ServicePort) -> str:
        """kube-proxy's ServicePortName string, e.g. ``default/svc-clusterip:svc-webport``."""
        return f"{self.namespace}/{self.name}:{port.name}"


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    pod: Pod | None
    node: str | None

    @property
    def addr(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class Scenario:
    name: str
    client: str  # pod name or the external client's name
    proto: str
    dialed_ip: str
    dialed_port: int
    service: str
    port_name: str
    dnat_node: str  # the node whose netfilter rewrites the destination
    description: str


@dataclass(frozen=True)
class Cluster:
    plan: Plan
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    external: External
    scenarios: tuple[Scenario, ...]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def pod(self, name: str) -> Pod:
        return next(p for p in self.pods if p.name == name)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def pods_on(self, node: str) -> list[Pod]:
        return [p for p in self.pods if p.node == node]

    def endpoints(self, service: Service, port: ServicePort) -> list[Endpoint]:
        """Ready endpoints of one service port, sorted by address (kube-proxy's order)."""
        if service.selector is None:
            found = [Endpoint(ip, port.target_port, None, None) for ip in service.static_endpoints]
        else:
            wanted = set(service.selector)
            found = [
                Endpoint(p.ip, port.target_port, p, p.node)
                for p in self.pods
                if wanted <= set(p.labels)
            ]
        return sorted(found, key=lambda e: (ipaddress.ip_address(e.ip), e.port))

    def client_ip(self, client: str) -> str:
        return self.external.ip if client == self.external.name else self.pod(client).ip

    def client_node(self, client: str) -> str | None:
        return None if client == self.external.name else self.pod(client).node

    def node_of_ip(self, ip: str) -> Node | None:
        return next((n for n in self.nodes if n.ip == ip), None)

    def is_pod_gateway(self, ip: str) -> bool:
        return any(n.gateway == ip for n in self.nodes)


def build_cluster(plan: Plan) -> Cluster:
    n_ip, n_cidr, p_ip, s_ip = plan.node_ips, plan.node_pod_cidrs, plan.pod_ips, plan.service_ips
    nodes = (
        Node(f"{CLUSTER_NAME}-control-plane", n_ip[0], n_cidr[0], "control-plane", "cp"),
        Node(f"{CLUSTER_NAME}-worker", n_ip[1], n_cidr[1], "worker", "w1"),
        Node(f"{CLUSTER_NAME}-worker2", n_ip[2], n_cidr[2], "worker", "w2"),
        Node(f"{CLUSTER_NAME}-worker3", n_ip[3], n_cidr[3], "worker", "w3"),
    )
    web = (("app", "webpod"),)
    pods = (
        Pod("net-pod", "default", nodes[0].name, p_ip[0], (), False, "netpod"),
        Pod("webpod1", "default", nodes[1].name, p_ip[1], web, True, "web1"),
        Pod("webpod2", "default", nodes[2].name, p_ip[2], web, True, "web2"),
        Pod("webpod3", "default", nodes[3].name, p_ip[3], web, True, "web3"),
    )
    services = (
        Service(
            "default",
            "kubernetes",
            "ClusterIP",
            s_ip[0],
            (ServicePort("https", "tcp", 443, 6443),),
            None,
            (nodes[0].ip,),
        ),
        Service(
            "default",
            "svc-clusterip",
            "NodePort",
            s_ip[1],
            (ServicePort("svc-webport", "tcp", plan.http_port, HTTP_TARGET_PORT, plan.node_port),),
            web,
        ),
        Service(
            "default",
            "svc-udp",
            "ClusterIP",
            s_ip[2],
            (ServicePort("svc-udpport", "udp", UDP_TARGET_PORT, UDP_TARGET_PORT),),
            web,
        ),
    )
    external = External("mypc", plan.external_ip, "mypc")
    cp, w1 = nodes[0].name, nodes[1].name
    scenarios = (
        Scenario(
            "pod-clusterip",
            "net-pod",
            "tcp",
            s_ip[1],
            plan.http_port,
            "svc-clusterip",
            "svc-webport",
            cp,
            f"net-pod -> ClusterIP {s_ip[1]}:{plan.http_port} (DNAT on the client's node, no SNAT)",
        ),
        Scenario(
            "external-nodeport",
            "mypc",
            "tcp",
            nodes[1].ip,
            plan.node_port,
            "svc-clusterip",
            "svc-webport",
            w1,
            f"mypc -> NodePort {n_ip[1]}:{plan.node_port} (SNAT to the node IP or, for the local "
            "backend, to the pod gateway)",
        ),
        Scenario(
            "pod-nodeport-gateway",
            "net-pod",
            "tcp",
            nodes[1].gateway,
            plan.node_port,
            "svc-clusterip",
            "svc-webport",
            w1,
            f"net-pod -> NodePort on myk8s-worker's pod gateway "
            f"{nodes[1].gateway}:{plan.node_port} (the seed's case)",
        ),
        Scenario(
            "hairpin-clusterip",
            "webpod1",
            "tcp",
            s_ip[1],
            plan.http_port,
            "svc-clusterip",
            "svc-webport",
            w1,
            "webpod1 -> its own ClusterIP; requests that land on webpod1 itself are hairpins",
        ),
        Scenario(
            "pod-clusterip-udp",
            "net-pod",
            "udp",
            s_ip[2],
            UDP_TARGET_PORT,
            "svc-udp",
            "svc-udpport",
            cp,
            f"net-pod -> UDP ClusterIP {s_ip[2]}:{UDP_TARGET_PORT} "
            "(one datagram and one reply each)",
        ),
    )
    return Cluster(plan, nodes, pods, services, external, scenarios)


CLUSTER = build_cluster(PLANS["kind"])

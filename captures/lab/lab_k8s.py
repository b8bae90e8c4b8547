"""Cluster metadata as ``kubectl get ... -A -o json`` would print it (API object shapes of
Kubernetes v1.31: core/v1 Pod, Service, Node, ConfigMap and discovery.k8s.io/v1 EndpointSlice).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lab_model import K8S_VERSION, Cluster, Node, Pod, Service, short_hash

Obj = dict[str, Any]
ZONES = {"control-plane": "ap-northeast-2a", "worker": "ap-northeast-2a"}
ZONES.update({"worker2": "ap-northeast-2b", "worker3": "ap-northeast-2c"})


def _uid(kind: str, namespace: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"natlens-lab/{kind}/{namespace}/{name}"))


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(kind: str, namespace: str | None, name: str, created: datetime, rv: int) -> Obj:
    meta: Obj = {"creationTimestamp": _ts(created), "name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update(resourceVersion=str(rv), uid=_uid(kind, namespace or "", name))
    return meta


def _list(items: list[Obj]) -> Obj:
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def node_obj(node: Node, created: datetime, kernel: str, rv: int) -> Obj:
    suffix = node.name.removeprefix("myk8s-")
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "mynode": "worker1" if suffix == "worker" else suffix,
        "topology.kubernetes.io/zone": ZONES[suffix],
    }
    if node.role == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = ""
    meta = _meta("Node", None, node.name, created, rv)
    meta["labels"] = dict(sorted(labels.items()))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": meta,
        "spec": {
            "podCIDR": node.pod_cidr,
            "podCIDRs": [node.pod_cidr],
            "providerID": f"kind://docker/myk8s/{node.name}",
        },
        "status": {
            "addresses": [
                {"address": node.ip, "type": "InternalIP"},
                {"address": node.name, "type": "Hostname"},
            ],
            "conditions": [{"status": "True", "type": "Ready", "reason": "KubeletReady"}],
            "nodeInfo": {
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://1.7.18",
                "kernelVersion": kernel,
                "kubeProxyVersion": K8S_VERSION,
                "kubeletVersion": K8S_VERSION,
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
            },
        },
    }


def pod_obj(pod: Pod, node: Node, created: datetime, rv: int) -> Obj:
    meta = _meta("Pod", pod.namespace, pod.name, created, rv)
    if pod.labels:
        meta["labels"] = dict(pod.labels)
    if pod.serves:
        container: Obj = {"image": "traefik/whoami", "name": "container"}
    else:
        container = {
            "args": ["-f", "/dev/null"],
            "command": ["tail"],
            "image": "nicolaka/netshoot",
            "name": "netshoot-pod",
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [container],
            "dnsPolicy": "ClusterFirst",
            "nodeName": node.name,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 0,
        },
        "status": {
            "conditions": [{"status": "True", "type": "Ready"}],
            "hostIP": node.ip,
            "hostIPs": [{"ip": node.ip}],
            "phase": "Running",
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "qosClass": "BestEffort",
            "startTime": _ts(created),
        },
    }


def service_obj(svc: Service, created: datetime, rv: int) -> Obj:
    meta = _meta("Service", svc.namespace, svc.name, created, rv)
    if svc.name == "kubernetes":
        meta["labels"] = {"component": "apiserver", "provider": "kubernetes"}
    ports = []
    for p in svc.ports:
        port: Obj = {"name": p.name, "port": p.port, "protocol": p.proto.upper()}
        port["targetPort"] = p.target_port
        if p.node_port is not None:
            port["nodePort"] = p.node_port
        ports.append(dict(sorted(port.items())))
    spec: Obj = {
        "clusterIP": svc.cluster_ip,
        "clusterIPs": [svc.cluster_ip],
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": ports,
        "sessionAffinity": "None",
        "type": svc.type,
    }
    if svc.type == "NodePort":
        spec["externalTrafficPolicy"] = "Cluster"
    if svc.selector is not None:
        spec["selector"] = dict(svc.selector)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": dict(sorted(spec.items())),
        "status": {"loadBalancer": {}},
    }


def endpointslice_obj(cluster: Cluster, svc: Service, created: datetime, rv: int) -> Obj:
    name = svc.name  # the API server writes the slice of "kubernetes" itself, unsuffixed
    if svc.selector is not None:
        name = f"{svc.name}-{short_hash('slice:' + svc.name, 5)}"
    meta = _meta("EndpointSlice", svc.namespace, name, created, rv)
    meta["labels"] = {"kubernetes.io/service-name": svc.name}
    if svc.selector is not None:
        meta["generateName"] = f"{svc.name}-"
        meta["labels"]["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
    endpoints = []
    for ep in cluster.endpoints(svc, svc.ports[0]):
        entry: Obj = {
            "addresses": [ep.ip],
            "conditions": {"ready": True, "serving": True, "terminating": False},
        }
        if ep.pod is not None and ep.node is not None:
            entry["nodeName"] = ep.node
            entry["targetRef"] = {
                "kind": "Pod",
                "name": ep.pod.name,
                "namespace": ep.pod.namespace,
                "uid": _uid("Pod", ep.pod.namespace, ep.pod.name),
            }
        endpoints.append(entry)
    ports = [
        {"name": p.name, "port": p.target_port, "protocol": p.proto.upper()} for p in svc.ports
    ]
    return {
        "addressType": "IPv4",
        "apiVersion": "discovery.k8s.io/v1",
        "endpoints": endpoints,
        "kind": "EndpointSlice",
        "metadata": meta,
        "ports": ports,
    }


def kube_proxy_configmap(
    ipvs_like: bool, pod_cidr: str, created: datetime, mode: str | None = None
) -> Obj:
    mode = mode or ("ipvs" if ipvs_like else "iptables")
    config = "\n".join(
        [
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1",
            f"clusterCIDR: {pod_cidr}",
            "iptables:",
            "  masqueradeAll: false",
            "  masqueradeBit: null",
            "ipvs:",
            '  scheduler: ""',
            f"  strictARP: {'true' if ipvs_like else 'false'}",
            "kind: KubeProxyConfiguration",
            "metricsBindAddress: 0.0.0.0",
            f"mode: {mode}",
            "",
        ]
    )
    meta = _meta("ConfigMap", "kube-system", "kube-proxy", created, 300)
    meta["labels"] = {"app": "kube-proxy"}
    return {
        "apiVersion": "v1",
        "data": {"config.conf": config},
        "kind": "ConfigMap",
        "metadata": meta,
    }


def write_cluster(
    cluster: Cluster, folder: Path, ipvs_like: bool, kernel: str, mode: str | None = None
) -> list[str]:
    """Write cluster/*.json; returns the file names written."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    created = now - timedelta(minutes=30)
    files = {
        "nodes.json": _list(
            [node_obj(n, created, kernel, 500 + i) for i, n in enumerate(cluster.nodes)]
        ),
        "pods.json": _list(
            [pod_obj(p, cluster.node(p.node), created, 900 + i) for i, p in enumerate(cluster.pods)]
        ),
        "services.json": _list(
            [service_obj(s, created, 700 + i) for i, s in enumerate(cluster.services)]
        ),
        "endpointslices.json": _list(
            [
                endpointslice_obj(cluster, s, created, 800 + i)
                for i, s in enumerate(cluster.services)
            ]
        ),
        "configmap-kube-proxy.json": kube_proxy_configmap(
            ipvs_like, cluster.plan.pod_cidr, created, mode
        ),
    }
    for name, obj in files.items():
        # kubectl prints objects as maps: keys sorted, four-space indent
        (folder / name).write_text(json.dumps(obj, indent=4, sort_keys=True) + "\n")
    return list(files)

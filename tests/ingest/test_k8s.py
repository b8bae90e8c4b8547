"""kubectl -o json ingestor: every object counted and located, per-kind rows as in the API."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from pipeline.ingest import host, k8s
from pipeline.ingest.records import ParsedChunk

K8S = Path(__file__).parent.parent / "fixtures" / "k8s"
MIXED = "kubectl-get-pods-services-endpointslices-nodes-A-o-json.json"


def _parse(name: str) -> ParsedChunk:
    text = (K8S / name).read_text()
    detection = k8s.detect(text)
    assert detection is not None and detection.kind == "kubectl-json"
    assert host.detect(text) is None
    chunk = k8s.parse(text, detection.kind)
    chunk.check_counts()
    return chunk


def _frame(name: str, table: str) -> pl.DataFrame:
    return _parse(name).frames[table]


def test_mixed_list_one_record_per_item() -> None:
    chunk = _parse(MIXED)
    items = json.loads((K8S / MIXED).read_text())["items"]
    assert chunk.records_read == chunk.records_parsed == len(items) == 17
    objects = chunk.frames["raw_k8s_objects"]
    assert objects["kind"].value_counts().sort("kind").rows() == [
        ("EndpointSlice", 3),
        ("Node", 4),
        ("Pod", 7),
        ("Service", 3),
    ]
    # object_json is the item itself, and source_line is where the item's `{` is
    lines = (K8S / MIXED).read_text().splitlines()
    for row, item in zip(objects.iter_rows(named=True), items, strict=True):
        assert json.loads(row["object_json"]) == item
        assert lines[row["source_line"] - 1].strip() == "{"
        assert lines[row["source_line"]].strip().startswith('"a')  # addressType / apiVersion


def test_pods_nodes_services_of_the_seed_cluster() -> None:
    chunk = _parse(MIXED)
    pods = chunk.frames["raw_k8s_pods"]
    by_pod = {r["pod"]: r for r in pods.iter_rows(named=True)}
    assert (by_pod["webpod1"]["pod_ip"], by_pod["webpod1"]["node_name"]) == (
        "10.10.2.2",
        "myk8s-worker",
    )
    assert by_pod["net-pod"]["host_ip"] == "172.18.0.4" and by_pod["net-pod"]["labels_json"] == "{}"
    assert by_pod["kube-proxy-7xw2m"]["is_host_network"] is True
    dns_ports = by_pod["coredns-6f6b679f8f-9kxqz"]["container_ports"]
    assert {"name": "dns", "port": 53, "proto": "udp"} in dns_ports
    nodes = chunk.frames["raw_k8s_nodes"].filter(pl.col("address_type") == "InternalIP")
    assert sorted(nodes.select("node_name", "address", "pod_cidr").rows()) == [
        ("myk8s-control-plane", "172.18.0.4", "10.10.0.0/24"),
        ("myk8s-worker", "172.18.0.5", "10.10.2.0/24"),
        ("myk8s-worker2", "172.18.0.2", "10.10.1.0/24"),
        ("myk8s-worker3", "172.18.0.3", "10.10.3.0/24"),
    ]
    services = chunk.frames["raw_k8s_service_ports"]
    cols = ["service", "service_type", "cluster_ip", "port_name", "proto", "port"]
    assert sorted(services.select([*cols, "target_port", "node_port"]).rows()) == [
        ("kube-dns", "ClusterIP", "10.200.1.10", "dns", "udp", 53, "53", None),
        ("kube-dns", "ClusterIP", "10.200.1.10", "dns-tcp", "tcp", 53, "53", None),
        ("kube-dns", "ClusterIP", "10.200.1.10", "metrics", "tcp", 9153, "9153", None),
        ("kubernetes", "ClusterIP", "10.200.1.1", "https", "tcp", 443, "6443", None),
        ("svc-clusterip", "NodePort", "10.200.1.216", "svc-webport", "tcp", 9000, "80", 30001),
    ]


def test_endpoint_slices() -> None:
    endpoints = _frame(MIXED, "raw_k8s_endpoints")
    web = endpoints.filter(pl.col("service") == "svc-clusterip")
    assert sorted(web.select("address", "port", "node_name", "pod").rows()) == [
        ("10.10.1.2", 80, "myk8s-worker2", "webpod2"),
        ("10.10.2.2", 80, "myk8s-worker", "webpod1"),
        ("10.10.3.2", 80, "myk8s-worker3", "webpod3"),
    ]
    assert endpoints.filter(pl.col("service") == "kube-dns").height == 6  # 2 pods x 3 ports
    api = endpoints.filter(pl.col("service") == "kubernetes").row(0, named=True)
    assert (api["address"], api["port"], api["is_ready"], api["is_serving"]) == (
        "172.18.0.4",
        6443,
        True,
        None,  # the apiserver's slice sets only `ready`; unset stays unset
    )
    terminating = _frame(
        "kubectl-get-endpointslices-l-service-name-svc-clusterip-o-json.json", "raw_k8s_endpoints"
    ).filter(pl.col("pod") == "webpod3")
    assert terminating.select("is_ready", "is_serving", "is_terminating").row(0) == (
        False,
        True,
        True,
    )


def test_v1_endpoints_not_ready_addresses() -> None:
    frame = _frame("kubectl-get-endpoints-svc-clusterip-o-json.json", "raw_k8s_endpoints")
    assert sorted(frame.select("address", "pod", "is_ready", "source_kind", "slice").rows()) == [
        ("10.10.1.2", "webpod2", True, "Endpoints", None),
        ("10.10.2.2", "webpod1", True, "Endpoints", None),
        ("10.10.3.2", "webpod3", False, "Endpoints", None),
    ]


def test_other_kinds_and_api_lists() -> None:
    cm = _parse("kubectl-get-cm-n-kube-system-kube-proxy-o-json.json")
    assert [name for name, f in cm.frames.items() if f.height] == ["raw_k8s_objects"]
    raw = _parse("kubectl-get-raw-api-v1-namespaces-default-pods.json")
    assert set(raw.frames["raw_k8s_objects"]["kind"]) == {"Pod"}  # PodList items have no kind
    assert raw.frames["raw_k8s_pods"].height == 4


def test_damaged_document() -> None:
    chunk = _parse("damaged-kubectl-get-o-json.json")
    assert [(e.line, e.reason) for e in chunk.errors] == [
        (1, "line is not part of the JSON output"),
        (133, "Pod has no metadata.name"),
        (295, "spec.clusterIPs[] '10.200.1.999' is not an IP address"),
        (338, "incomplete or invalid JSON element (the input ends inside it)"),
    ]
    assert chunk.records_parsed == 2
    assert chunk.frames["raw_k8s_objects"]["name"].to_list() == ["net-pod", "kubernetes"]


def test_odd_but_valid_shapes() -> None:
    docs = [
        {"apiVersion": "v1", "items": None, "kind": "List", "metadata": {}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "headless", "namespace": "default"},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"], "type": "ClusterIP"},
        },
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"}, "status": {}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bare"}},
    ]
    chunk = k8s.parse("\n".join(json.dumps(d) for d in docs), "kubectl-json")
    chunk.check_counts()
    assert (chunk.records_read, chunk.records_parsed) == (3, 3)
    svc = chunk.frames["raw_k8s_service_ports"].row(0, named=True)
    assert (svc["cluster_ip"], svc["port"]) == (None, None)
    assert chunk.frames["raw_k8s_pods"]["pod_ip"].to_list() == [None]
    assert chunk.frames["raw_k8s_nodes"]["node_name"].to_list() == ["bare"]

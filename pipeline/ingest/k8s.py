"""kubectl get ... -o json -> raw_k8s_objects and the per-kind tables.

Accepts a ``List`` (``kubectl get pods,services,endpointslices,nodes -A -o json``: items of mixed
kinds), per-kind lists (``PodList`` from the API, whose items carry no kind), single objects and
several such documents in a row. A record is one object (an element of ``items``, or a top-level
object): every object gives a raw_k8s_objects row; Pods, Services, EndpointSlices, v1 Endpoints
and Nodes also give rows in their own table; other kinds stay in raw_k8s_objects only. An object
without kind or metadata.name, or with a field of the wrong type or a bad IP address, is rejected
whole at the line where it starts; a truncated document keeps its complete objects.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any

from ..schemas import (
    RAW_K8S_ENDPOINTS,
    RAW_K8S_NODES,
    RAW_K8S_OBJECTS,
    RAW_K8S_PODS,
    RAW_K8S_SERVICE_PORTS,
    TableSchema,
)
from .json_located import iter_json
from .records import Detection, ParsedChunk, RecordError

KINDS: tuple[str, ...] = ("kubectl-json",)

_JSON_START = re.compile(r"^\s*[\[{]", re.M)
_API_VERSION = re.compile(r'"apiVersion"\s*:')
_LIST_KIND = re.compile(r'"kind"\s*:\s*"(\w+)List"')
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Row = dict[str, Any]


class BadObjectError(ValueError):
    """An object that cannot be used; the message is the RecordError reason."""


def detect(text: str) -> Detection | None:
    """Score = objects with an apiVersion (kubectl always prints it)."""
    if not _JSON_START.search(text):
        return None
    count = len(_API_VERSION.findall(text))
    return Detection("kubectl-json", count) if count else None


def parse(text: str, kind: str) -> ParsedChunk:
    chunk = ParsedChunk()
    rows: dict[str, list[Row]] = {t.name: [] for t in _TABLES}
    item_kind = next((m.group(1) for m in _LIST_KIND.finditer(text)), None)  # PodList -> Pod
    for item in iter_json(text, items_key="items"):
        if isinstance(item, RecordError):
            chunk.records_read += 1
            chunk.errors.append(item)
            continue
        obj = item.value
        is_list = isinstance(obj, dict) and str(obj.get("kind", "")).endswith("List")
        if is_list and "items" in obj and obj["items"] is None:
            continue  # an empty list ("items": null): structure, no object
        chunk.records_read += 1
        try:
            if is_list and "items" in obj:
                raise BadObjectError("a List whose 'items' is not an array")
            produced = object_rows(obj, item_kind)
        except BadObjectError as exc:
            chunk.errors.append(RecordError(str(exc), item.raw, line=item.line))
            continue
        chunk.records_parsed += 1
        for table, table_rows in produced.items():
            rows[table] += [{"source_line": item.line, **r} for r in table_rows]
    chunk.frames = {t.name: t.frame(rows[t.name]) for t in _TABLES}
    return chunk


def object_rows(obj: object, default_kind: str | None = None) -> dict[str, list[Row]]:
    """All rows of one Kubernetes object, by table name."""
    if not isinstance(obj, dict):
        raise BadObjectError(f"item is a JSON {type(obj).__name__}, not an object")
    kind = obj.get("kind") or default_kind
    meta = _dict(obj, "metadata")
    if not isinstance(kind, str):
        raise BadObjectError("object has no 'kind'")
    if not isinstance(meta.get("name"), str):
        raise BadObjectError(f"{kind} has no metadata.name")
    namespace = _opt_str(meta.get("namespace"))
    produced = {
        RAW_K8S_OBJECTS.name: [
            {
                "kind": kind,
                "namespace": namespace,
                "name": meta["name"],
                "object_json": json.dumps(obj, ensure_ascii=False, separators=(",", ":")),
                "api_version": _opt_str(obj.get("apiVersion")),
            }
        ]
    }
    handler = _HANDLERS.get(kind)
    if handler is not None:
        table, build = handler
        try:
            produced[table.name] = build(obj, meta)
        except BadObjectError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:  # a field of an unexpected type
            raise BadObjectError(f"{kind} {meta['name']}: malformed field ({exc})") from None
    return produced


# ---------------------------------------------------------------- typed access


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadObjectError(f"'{key}' is a {type(value).__name__}, not an object")
    return value


def _list(obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadObjectError(f"'{key}' is not a list of objects")
    return value


def _ip(value: object, what: str) -> str:
    try:
        return ipaddress.ip_address(str(value)).compressed
    except ValueError:
        raise BadObjectError(f"{what} {value!r} is not an IP address") from None


def _port(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise BadObjectError(f"{what} {value!r} is not a port number")
    return value


def _opt_int(value: object, what: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadObjectError(f"{what} {value!r} is not an integer")
    if value is not None and not 0 <= value < 2**63:
        raise BadObjectError(f"{what} {value!r} is out of range")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _proto(value: object) -> str:
    return str(value or "TCP").lower()  # the API defaults protocol to TCP


def _pod_ref(ref: dict[str, Any]) -> str | None:
    return _opt_str(ref.get("name")) if ref.get("kind") == "Pod" else None


# ---------------------------------------------------------------- per kind


def _pod_rows(obj: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    spec, status = _dict(obj, "spec"), _dict(obj, "status")
    ips = [p.get("ip") for p in _list(status, "podIPs")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    ports = [
        {
            "name": _opt_str(p.get("name")),
            "port": _port(p.get("containerPort"), "containerPort"),
            "proto": _proto(p.get("protocol")),
        }
        for c in _list(spec, "containers")
        for p in _list(c, "ports")
    ]
    host_ip = status.get("hostIP")
    base = {
        "namespace": _opt_str(meta.get("namespace")),
        "pod": meta["name"],
        "node_name": _opt_str(spec.get("nodeName")),
        "host_ip": _ip(host_ip, "status.hostIP") if host_ip else None,
        "phase": _opt_str(status.get("phase")),
        "labels_json": json.dumps(_dict(meta, "labels"), sort_keys=True, ensure_ascii=False),
        "is_host_network": spec.get("hostNetwork") is True,
        "container_ports": ports,
    }
    pod_ips: list[str | None] = [_ip(ip, "status.podIPs[].ip") for ip in ips]
    return [{**base, "pod_ip": ip} for ip in pod_ips or [None]]


def _service_rows(obj: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    spec, status = _dict(obj, "spec"), _dict(obj, "status")
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    cluster_ips = [None if ip == "None" else _ip(ip, "spec.clusterIPs[]") for ip in ips] or [None]
    affinity = _dict(_dict(spec, "sessionAffinityConfig"), "clientIP")
    ingress = _list(_dict(status, "loadBalancer"), "ingress")
    base = {
        "namespace": _opt_str(meta.get("namespace")),
        "service": meta["name"],
        "service_type": str(spec.get("type") or "ClusterIP"),
        "session_affinity": _opt_str(spec.get("sessionAffinity")),
        "external_traffic_policy": _opt_str(spec.get("externalTrafficPolicy")),
        "internal_traffic_policy": _opt_str(spec.get("internalTrafficPolicy")),
        "session_affinity_timeout_s": _opt_int(affinity.get("timeoutSeconds"), "timeoutSeconds"),
        "external_ips": [_ip(ip, "spec.externalIPs[]") for ip in spec.get("externalIPs") or []],
        "load_balancer_ips": [str(i.get("ip") or i.get("hostname")) for i in ingress],
    }
    ports: list[Row] = [
        {
            "port_name": _opt_str(p.get("name")),
            "proto": _proto(p.get("protocol")),
            "port": _port(p.get("port"), "ports[].port"),
            "target_port": _opt_str(p.get("targetPort")),
            "node_port": _port(p.get("nodePort"), "ports[].nodePort"),
        }
        for p in _list(spec, "ports")
    ] or [{}]
    return [{**base, "cluster_ip": ip, **port} for ip in cluster_ips for port in ports]


def _endpoint_ports(ports: list[dict[str, Any]]) -> list[Row]:
    return [
        {
            "port_name": _opt_str(p.get("name")),
            "proto": _proto(p.get("protocol")),
            "port": _port(p.get("port"), "ports[].port"),
        }
        for p in ports
    ] or [{}]


def _slice_rows(obj: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    address_type = _opt_str(obj.get("addressType"))
    base = {
        "namespace": _opt_str(meta.get("namespace")),
        "service": _opt_str(_dict(meta, "labels").get(SERVICE_NAME_LABEL)),
        "slice": meta["name"],
        "source_kind": "EndpointSlice",
        "address_type": address_type,
    }
    ports = _endpoint_ports(_list(obj, "ports"))
    rows = []
    for ep in _list(obj, "endpoints"):
        conditions = _dict(ep, "conditions")
        endpoint = {
            **base,
            "node_name": _opt_str(ep.get("nodeName")),
            "zone": _opt_str(ep.get("zone")),
            "pod": _pod_ref(_dict(ep, "targetRef")),
            "is_ready": _opt_bool(conditions.get("ready")),
            "is_serving": _opt_bool(conditions.get("serving")),
            "is_terminating": _opt_bool(conditions.get("terminating")),
        }
        addresses = ep.get("addresses")
        if not isinstance(addresses, list) or not addresses:
            raise BadObjectError("an endpoint has no 'addresses' list")
        for address in addresses:
            addr = str(address) if address_type == "FQDN" else _ip(address, "endpoint address")
            rows += [{**endpoint, "address": addr, **port} for port in ports]
    return rows


def _endpoints_rows(obj: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    base = {
        "namespace": _opt_str(meta.get("namespace")),
        "service": meta["name"],
        "source_kind": "Endpoints",
    }
    rows = []
    for subset in _list(obj, "subsets"):
        ports = _endpoint_ports(_list(subset, "ports"))
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for a in _list(subset, key):
                endpoint = {
                    **base,
                    "address": _ip(a.get("ip"), f"subsets[].{key}[].ip"),
                    "node_name": _opt_str(a.get("nodeName")),
                    "pod": _pod_ref(_dict(a, "targetRef")),
                    "is_ready": ready,
                }
                rows += [{**endpoint, **port} for port in ports]
    return rows


def _node_rows(obj: dict[str, Any], meta: dict[str, Any]) -> list[Row]:
    spec = _dict(obj, "spec")
    cidrs = spec.get("podCIDRs")
    base = {
        "node_name": meta["name"],
        "pod_cidr": _opt_str(spec.get("podCIDR")),
        "pod_cidrs": [str(c) for c in cidrs] if isinstance(cidrs, list) else None,
    }
    rows = []
    for a in _list(_dict(obj, "status"), "addresses"):
        kind, address = _opt_str(a.get("type")), a.get("address")
        value = _ip(address, f"{kind} address") if kind in ("InternalIP", "ExternalIP") else address
        rows.append({**base, "address_type": kind, "address": _opt_str(value)})
    return rows or [base]


_Builder = Callable[[dict[str, Any], dict[str, Any]], list[Row]]
_HANDLERS: dict[str, tuple[TableSchema, _Builder]] = {
    "Pod": (RAW_K8S_PODS, _pod_rows),
    "Service": (RAW_K8S_SERVICE_PORTS, _service_rows),
    "EndpointSlice": (RAW_K8S_ENDPOINTS, _slice_rows),
    "Endpoints": (RAW_K8S_ENDPOINTS, _endpoints_rows),
    "Node": (RAW_K8S_NODES, _node_rows),
}
_TABLES = (RAW_K8S_OBJECTS, RAW_K8S_PODS, RAW_K8S_SERVICE_PORTS, RAW_K8S_ENDPOINTS, RAW_K8S_NODES)

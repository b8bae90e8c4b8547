"""Checks of an nftables-mode lab bundle's rule dumps, read back with natlens' nft ingestor.

The node's ``nft list ruleset`` and ``nft -j list ruleset`` must give the same rows for
``table ip kube-proxy``, hold kube-proxy's shapes (verdict maps, masquerade fully-random, the
numgen vmap or dnat map), and every service chain must be the hash of a Service port of the
cluster, with one numgen slot per endpoint.
"""

from __future__ import annotations

from pathlib import Path

import lab_kproxy_nftables as kp
from lab_model import Cluster

from tests.ingest.nft_compare import differences, parse


def _kube_proxy(chunk):  # noqa: ANN001, ANN202 - a ParsedChunk, filtered in place
    chunk.frames = {
        name: frame.filter(frame["table_name"] == kp.TABLE) for name, frame in chunk.frames.items()
    }
    return chunk


def check_nft_rules(cluster: Cluster, folder: Path, shape: str) -> None:
    text = _kube_proxy(parse((folder / "nft-ruleset.txt").read_text(), "nft-ruleset"))
    as_json = _kube_proxy(parse((folder / "nft-ruleset.json").read_text(), "nft-json"))
    assert not text.errors and not as_json.errors, (text.errors, as_json.errors)
    assert differences(text, as_json, with_handles=False) == [], folder
    rules = text.frames["raw_nft_rules"].to_dicts()
    by_chain: dict[str, list[str]] = {}
    for row in rules:
        by_chain.setdefault(row["chain"], []).append(row["rule"])
    assert "ip daddr . meta l4proto . th dport vmap @service-ips" in by_chain["services"]
    assert any("masquerade fully-random" in r for r in by_chain["masquerading"])
    elements = text.frames["raw_nft_elements"].to_dicts()
    targets = {e["value"] for e in elements if e["set_name"] == "service-ips"}
    for svc in cluster.services:
        for port in svc.ports:
            chain = kp.service_chain(svc, port)
            assert f"goto {chain}" in targets, f"{folder.name}: {chain} not in service-ips"
            endpoints = cluster.endpoints(svc, port)
            picker = by_chain[chain][-1]
            assert f"numgen random mod {len(endpoints)}" in picker, picker
            for ep in endpoints:
                if shape == "vmap":
                    assert f"goto {kp.endpoint_chain(svc, port, ep)}" in picker
                    assert by_chain[kp.endpoint_chain(svc, port, ep)][-1].endswith(
                        f"dnat to {ep.addr}"
                    )
                else:
                    assert f"{ep.ip} . {ep.port}" in picker and "dnat ip to" in picker
            if port.node_port is not None:
                nodeport = f"{port.proto} . {port.node_port}"
                assert any(
                    e["key"] == nodeport and e["value"] == f"goto {kp.external_chain(svc, port)}"
                    for e in elements
                )
    if shape == "dnat-map":
        assert any(e["set_name"] == "hairpin-connections" for e in elements)
        assert not any(c.startswith("endpoint-") for c in by_chain)

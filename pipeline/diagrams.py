"""Mermaid diagrams for the report: one connection's hops, and a distribution bar chart."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9 .:/_\-()\[\]>+*=,]")


def _safe(text: Any) -> str:
    """Text from captures, reduced to characters Mermaid cannot misread."""
    return _UNSAFE.sub(" ", str(text if text is not None else "")).strip()


def _endpoint(ip: Any, port: Any) -> str:
    ip_text = str(ip)
    shown = f"[{ip_text}]" if ":" in ip_text else ip_text
    return f"{shown}:{port}" if port is not None else shown


def connection_sequence(row: dict[str, Any]) -> str:
    """Client -> node (DNAT, SNAT) -> backend, with the addresses on the wire at each hop."""
    client = _endpoint(row["client_ip"], row["client_port"])
    dialed = _endpoint(row["dialed_ip"], row["dialed_port"])
    backend = _endpoint(row["backend_ip"], row["backend_port"])
    seen_from = _endpoint(row["observed_snat_ip"], row["observed_snat_port"])
    client_label = _safe(row.get("client_name") or "client")
    backend_label = _safe(row.get("backend_name") or "backend")
    dnat_by = _safe(row.get("dnat_by") or "DNAT")
    snat = _safe(row.get("decision") or "unknown")
    iface = _safe(row.get("egress_iface")) or "?"
    lines = [
        "```mermaid",
        "sequenceDiagram",
        f"    participant C as {client_label} {_safe(client)}",
        f"    participant N as node {_safe(row['node'])}",
        f"    participant B as {backend_label} {_safe(backend)}",
        f"    C->>N: {_safe(client)} to {_safe(dialed)}",
        f"    Note over N: DNAT to {_safe(backend)} by {dnat_by[:60]}",
        f"    Note over N: SNAT {snat}, out via {iface}, source {_safe(seen_from)}",
        f"    N->>B: {_safe(seen_from)} to {_safe(backend)}",
        f"    B-->>N: {_safe(backend)} to {_safe(seen_from)}",
        f"    N-->>C: {_safe(dialed)} to {_safe(client)}",
        "```",
    ]
    return "\n".join(lines) + "\n"


def distribution_chart(title: str, rows: Sequence[dict[str, Any]]) -> str:
    """Observed connections per backend as bars, the promised counts as a line."""
    labels = ", ".join(f'"{_safe(_endpoint(r["backend_ip"], r["backend_port"]))}"' for r in rows)
    observed = ", ".join(str(int(r["connections"])) for r in rows)
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{_safe(title)}"',
        f"    x-axis [{labels}]",
        '    y-axis "connections"',
        f"    bar [{observed}]",
    ]
    if all(r.get("expected_connections") is not None for r in rows):
        expected = ", ".join(f"{float(r['expected_connections']):.2f}" for r in rows)
        lines.append(f"    line [{expected}]")
    lines.append("```")
    return "\n".join(lines) + "\n"

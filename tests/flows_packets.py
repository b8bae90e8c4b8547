"""Test helper: pcap/pcapng -> raw_packets frames, and a DuckDB holding only the flow views.

Frames come from pipeline.ingest.pcap.read_capture when that module is present; otherwise from a
small dpkt decoder here that fills the RAW_PACKETS columns the flow views read (lengths from the
IP/TCP/UDP headers, so Ethernet padding never counts). The dpkt path cannot tell pcapng interfaces
(and their timestamp resolutions) apart.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dpkt
import duckdb
import polars as pl

from pipeline.schemas import (
    RAW_APP_MESSAGES,
    RAW_HOST_ADDRS,
    RAW_K8S_NODES,
    RAW_K8S_PODS,
    RAW_K8S_SERVICE_PORTS,
    RAW_PACKETS,
)

REPO = Path(__file__).resolve().parent.parent
QUERIES = REPO / "queries"
FLOW_VIEW_FILES = (
    "10_staging/stg_pcap__packets.sql",
    "10_staging/stg_k8s__pods.sql",
    "10_staging/stg_k8s__nodes.sql",
    "10_staging/stg_k8s__service_ports.sql",
    "20_intermediate/int_k8s_addresses__named.sql",
    "20_intermediate/int_k8s_service_ports__named.sql",
    "20_intermediate/int_packets__keyed.sql",
    "20_intermediate/int_packets__grouped.sql",
    "20_intermediate/int_packets__sessionized.sql",
    "20_intermediate/int_packets__annotated.sql",
    "20_intermediate/int_flows__summarized.sql",
    "10_staging/stg_pcap__flows.sql",
    "10_staging/stg_pcap__app_messages.sql",
    "10_staging/stg_host__addrs.sql",
    "20_intermediate/int_flows__services.sql",
    "20_intermediate/int_flows__tunnel_parents.sql",
    "30_answers/flows.sql",
)
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
FLAG_LETTERS = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x20, "U"), (0x10, "A"))


def _flags_text(bits: int) -> str:
    return "".join(letter for bit, letter in FLAG_LETTERS if bits & bit)


def _ip_layer(frame: bytes, link_type: int) -> tuple[Any, int | None]:
    if link_type == dpkt.pcap.DLT_EN10MB:
        eth = dpkt.ethernet.Ethernet(frame)
        vlan = eth.vlan_tags[0].id if getattr(eth, "vlan_tags", None) else None
        return eth.data, vlan
    if link_type == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(frame).data, None
    if link_type in (dpkt.pcap.DLT_RAW, 101, 228, 229):
        return (dpkt.ip6.IP6(frame) if frame[0] >> 4 == 6 else dpkt.ip.IP(frame)), None
    return None, None


def _transport(ip: Any, row: dict[str, Any]) -> None:
    if isinstance(ip, dpkt.ip.IP):
        row["ip_version"] = 4
        row["src_ip"] = str(ipaddress.IPv4Address(ip.src))
        row["dst_ip"] = str(ipaddress.IPv4Address(ip.dst))
        row["ip_len"] = ip.len
        row["ip_id"] = ip.id
        row["ttl"] = ip.ttl
        row["is_fragment"] = bool(ip.mf or ip.offset)
        proto, seg_len = ip.p, ip.len - ip.hl * 4
    else:
        row["ip_version"] = 6
        row["src_ip"] = str(ipaddress.IPv6Address(ip.src))
        row["dst_ip"] = str(ipaddress.IPv6Address(ip.dst))
        row["ip_len"] = ip.plen + 40
        row["ttl"] = ip.hlim
        row["is_fragment"] = False
        ext = sum(len(bytes(h)) for h in getattr(ip, "extension_hdrs", {}).values() if h)
        proto, seg_len = ip.p, ip.plen - ext
    row["proto_num"] = proto
    row["proto"] = PROTO_NAMES.get(proto, str(proto))
    seg = ip.data
    if isinstance(seg, dpkt.tcp.TCP):
        row.update(
            src_port=seg.sport,
            dst_port=seg.dport,
            tcp_flags_bits=seg.flags,
            tcp_flags=_flags_text(seg.flags),
            seq=seg.seq,
            ack=seg.ack,
            window=seg.win,
            payload_len=max(seg_len - seg.off * 4, 0),
        )
    elif isinstance(seg, dpkt.udp.UDP):
        row.update(src_port=seg.sport, dst_port=seg.dport, payload_len=max(seg.ulen - 8, 0))
    elif isinstance(seg, dpkt.sctp.SCTP):
        row.update(src_port=seg.sport, dst_port=seg.dport, payload_len=max(seg_len - 12, 0))
    elif isinstance(seg, (dpkt.icmp.ICMP, dpkt.icmp6.ICMP6)):
        row.update(icmp_type=seg.type, icmp_code=seg.code, payload_len=max(seg_len - 8, 0))
    else:
        row["payload_len"] = max(seg_len, 0)


def _records(path: Path) -> Iterator[tuple[float, bytes, int, int]]:
    with path.open("rb") as handle:
        reader = dpkt.pcap.UniversalReader(handle)
        link_type = reader.datalink()
        for ts, frame in reader:
            yield float(ts), bytes(frame), link_type, len(frame)


def packet_rows(path: Path) -> list[dict[str, Any]]:
    """One RAW_PACKETS row per frame (frame_no is 1-based, like tshark's frame.number)."""
    rows: list[dict[str, Any]] = []
    for frame_no, (ts, frame, link_type, caplen) in enumerate(_records(path), start=1):
        row: dict[str, Any] = {
            "frame_no": frame_no,
            "ts": datetime.fromtimestamp(ts, tz=UTC),
            "link_type": "ethernet" if link_type == dpkt.pcap.DLT_EN10MB else str(link_type),
            "frame_len": caplen,
            "caplen": caplen,
            "is_truncated": False,
        }
        try:
            ip, row["vlan"] = _ip_layer(frame, link_type)
            if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                _transport(ip, row)
        except (dpkt.UnpackError, ValueError, IndexError):
            pass
        rows.append(row)
    return rows


def packets_frame(path: Path) -> pl.DataFrame:
    """raw_packets rows of a capture (parser columns: no bundle_id/node/source_file yet)."""
    try:
        from pipeline.ingest.pcap import read_capture
    except ImportError:
        return RAW_PACKETS.frame(packet_rows(path))
    frames = [chunk.frames["raw_packets"] for chunk in read_capture(path)]
    return pl.concat(frames) if frames else RAW_PACKETS.frame([])


def flows_db(frames: dict[str, pl.DataFrame], bundle_id: str = "zeek") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with raw_packets (one frame per source file) and the flow views."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    # flows names addresses from kubectl JSON, services from app messages and local ends from
    # `ip addr`: their (empty) raw tables must exist
    for schema in (
        RAW_PACKETS,
        RAW_K8S_PODS,
        RAW_K8S_NODES,
        RAW_K8S_SERVICE_PORTS,
        RAW_APP_MESSAGES,
        RAW_HOST_ADDRS,
    ):
        con.register("_empty", schema.empty().to_arrow())
        con.execute(f"create table {schema.name} as select * from _empty limit 0")
        con.unregister("_empty")
    load_frames(con, frames, bundle_id)
    apply_flow_views(con)
    return con


def load_frames(
    con: duckdb.DuckDBPyConnection, frames: dict[str, pl.DataFrame], bundle_id: str = "zeek"
) -> None:
    """Insert raw_packets frames; the key is the source_file, its first folder the node."""
    for source_file, frame in frames.items():
        node = source_file.split("/")[0] if "/" in source_file else "-"
        full = frame.with_columns(
            pl.lit(bundle_id).alias("bundle_id"),
            pl.lit(node).alias("node"),
            pl.lit(source_file).alias("source_file"),
        ).select(list(RAW_PACKETS.polars_schema()))
        con.register("_chunk", full.to_arrow())
        con.execute("insert into raw_packets by name select * from _chunk")
        con.unregister("_chunk")


def apply_flow_views(con: duckdb.DuckDBPyConnection) -> None:
    for rel in FLOW_VIEW_FILES:
        path = QUERIES / rel
        body = path.read_text().strip().rstrip(";")
        con.execute(f"create or replace view {path.stem} as\n{body}")
        if path.stem == "int_flows__summarized":
            # why: natlens runs int_flows__summarized once per capture and stores it as
            # raw_flows; over several captures at once it gives the same rows
            # (tests/capture/test_ingest_once.py checks that)
            con.execute("create or replace view raw_flows as select * from int_flows__summarized")

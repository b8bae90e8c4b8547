"""Hand-built raw_packets rows for the cross-vantage connection rules (tests/test_connections_*.py).

A `Capture` is one capture file of one node; `nat_tcp` / `nat_udp` write what a translating node
captures of one connection (the pre-NAT leg on the way in, the post-NAT leg on the way out, with
the same IP IDs and sequence numbers, the forwarded copy one TTL lower) and what the backend's node
captures of the post-NAT leg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.db import connect, refresh_materialized
from pipeline.schemas import RAW_PACKETS

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
Tuple4 = tuple[str, int, str, int]


@dataclass
class Capture:
    node: str
    name: str  # file name, e.g. eth0.pcap
    link_type: str = "ethernet"
    iface: str | None = None  # SLL2 ifindex as text for an any capture
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        at_us: float,
        src: tuple[str, int],
        dst: tuple[str, int],
        *,
        proto: str = "tcp",
        flags: str = "",
        seq: int | None = None,
        ack: int | None = None,
        ip_id: int = 0,
        ttl: int = 64,
        payload: int = 0,
    ) -> None:
        bits = sum(
            b for letter, b in zip("FSRPA", (1, 2, 4, 8, 16), strict=True) if letter in flags
        )
        header = 20 if proto == "tcp" else 8
        self.rows.append(
            {
                "frame_no": len(self.rows) + 1,
                "ts": T0 + timedelta(microseconds=at_us),
                "iface": self.iface,
                "link_type": self.link_type,
                "ip_version": 4,
                "src_ip": src[0],
                "dst_ip": dst[0],
                "proto": proto,
                "proto_num": 6 if proto == "tcp" else 17,
                "src_port": src[1],
                "dst_port": dst[1],
                "tcp_flags": flags if proto == "tcp" else None,
                "tcp_flags_bits": bits if proto == "tcp" else None,
                "seq": seq if proto == "tcp" else None,
                "ack": ack if proto == "tcp" else None,
                "ip_id": ip_id,
                "ttl": ttl,
                "ip_len": 20 + header + payload,
                "payload_len": payload,
                "encap_depth": 0,
            }
        )


def tcp_exchange(
    cap: Capture,
    at_us: float,
    tup: Tuple4,
    *,
    isn: int,
    ip_id: int,
    ttl: int = 64,
    reply_ip_id: int = 0,
) -> None:
    """SYN, SYN-ACK, ACK, one request and one response segment of one tuple, 10 us apart."""
    client, server = (tup[0], tup[1]), (tup[2], tup[3])
    cap.add(at_us, client, server, flags="S", seq=isn, ack=0, ip_id=ip_id, ttl=ttl)
    cap.add(
        at_us + 10, server, client, flags="SA", seq=7000, ack=isn + 1, ip_id=reply_ip_id, ttl=ttl
    )
    cap.add(at_us + 20, client, server, flags="A", seq=isn + 1, ack=7001, ip_id=ip_id + 1, ttl=ttl)
    cap.add(
        at_us + 30,
        client,
        server,
        flags="PA",
        seq=isn + 1,
        ack=7001,
        ip_id=ip_id + 2,
        ttl=ttl,
        payload=78,
    )
    cap.add(
        at_us + 40,
        server,
        client,
        flags="PA",
        seq=7001,
        ack=isn + 79,
        ip_id=reply_ip_id + 1,
        ttl=ttl,
        payload=300,
    )


def udp_exchange(
    cap: Capture, at_us: float, tup: Tuple4, *, ip_id: int, reply_ip_id: int, ttl: int = 64
) -> None:
    client, server = (tup[0], tup[1]), (tup[2], tup[3])
    cap.add(at_us, client, server, proto="udp", ip_id=ip_id, ttl=ttl, payload=26)
    cap.add(at_us + 10, server, client, proto="udp", ip_id=reply_ip_id, ttl=ttl, payload=138)


def store(path: Path) -> duckdb.DuckDBPyConnection:
    """An empty database with every view applied (slow: share it between tests)."""
    con = connect(path)
    # why: the scenarios write packets by hand, so raw_packets is a table here (natlens keeps
    # captures as Parquet files) and raw_flows is computed live from it
    con.execute("drop view raw_packets")
    con.execute("create table raw_packets as select * from natlens_empty__raw_packets")
    con.execute("create or replace view raw_flows as select * from int_flows__summarized")
    return con


def load(
    con: duckdb.DuckDBPyConnection, captures: list[Capture], bundle: str = "b"
) -> duckdb.DuckDBPyConnection:
    """Replace the database's packets with these (and rebuild the materialised tables)."""
    con.execute("delete from raw_packets")
    for cap in captures:
        frame = RAW_PACKETS.frame(cap.rows).with_columns(
            pl.lit(bundle).alias("bundle_id"),
            pl.lit(cap.node).alias("node"),
            pl.lit(f"{bundle}/{cap.node}/{cap.name}").alias("source_file"),
        )
        con.register("_rows", frame.select(list(RAW_PACKETS.polars_schema())).to_arrow())
        con.execute("insert into raw_packets by name select * from _rows")
        con.unregister("_rows")
    # why: rows inserted by hand change no ingest file, so the refresh must be forced
    refresh_materialized(con, force=True)
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

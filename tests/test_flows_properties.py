"""Properties of the flow views on arbitrary packet sequences (hypothesis).

Whatever the packets (any flag combination, sequence numbers anywhere in 2^32, duplicated or
reordered segments, gaps longer than every timer), the views never fail and:
every keyed packet belongs to exactly one connection; each connection is one flows row with a
Zeek conn_state for its protocol, a well-formed history, consistent null/zero columns, a unique
uid and a Community ID; running the query again gives the same rows.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.schemas import RAW_PACKETS
from tests.flows_packets import flows_db, load_frames

TCP_STATES = {
    "S0",
    "S1",
    "SF",
    "REJ",
    "S2",
    "S3",
    "RSTO",
    "RSTR",
    "RSTOS0",
    "RSTRH",
    "SH",
    "SHR",
    "OTH",
}
UDP_STATES = {"S0", "SF", "SHR", "OTH"}
TCP_HISTORY = re.compile(r"\^?[ShHaAdDfFrRtTwWgGiIqQ]*")
UDP_HISTORY = re.compile(r"\^?(?:D|d|Dd|dD)")
COMMUNITY_ID = re.compile(r"1:[A-Za-z0-9+/]{27}=")
DELAYS_NS = (0, 1_000, 2_000_000, 4_999_999_999, 5_000_000_000, 61_000_000_000, 301_000_000_000)

packet = st.fixed_dictionaries(
    {
        "from_client": st.booleans(),
        "udp": st.booleans(),
        "flags": st.integers(0, 0x3F),
        "seq_step": st.one_of(st.integers(-3000, 3000), st.integers(0, 2**32 - 1)),
        "ack": st.integers(0, 2**32 - 1),
        "payload": st.sampled_from((0, 0, 1, 100, 1460)),
        "window": st.sampled_from((0, 512, 65535)),
        "delay": st.sampled_from(DELAYS_NS),
        "server_port": st.sampled_from((80, 53, 40001)),
    }
)
conversation = st.lists(packet, min_size=1, max_size=25)
BASE = {
    "from_client": True,
    "udp": False,
    "flags": 2,
    "seq_step": 1,
    "ack": 0,
    "payload": 100,
    "window": 512,
    "delay": 0,
    "server_port": 80,
}


def rows_for(conversations: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each conversation gets its own client port, so each is its own set of flow keys."""
    rows: list[dict[str, Any]] = []
    t = 1_700_000_000_000_000_000
    for n, packets in enumerate(conversations):
        seq = {True: 1000 + n, False: 9000 + n}
        for p in packets:
            t += p["delay"]
            seq[p["from_client"]] = (seq[p["from_client"]] + p["seq_step"]) % 2**32
            client, server = ("10.1.0.1", 30000 + n), ("10.2.0.2", p["server_port"])
            src, dst = (client, server) if p["from_client"] else (server, client)
            udp = p["udp"]
            rows.append(
                {
                    "frame_no": len(rows) + 1,
                    "ts": datetime.fromtimestamp(t / 1e9, tz=UTC),
                    "ip_version": 4,
                    "src_ip": src[0],
                    "dst_ip": dst[0],
                    "proto": "udp" if udp else "tcp",
                    "proto_num": 17 if udp else 6,
                    "src_port": src[1],
                    "dst_port": dst[1],
                    "tcp_flags_bits": None if udp else p["flags"],
                    "seq": None if udp else seq[p["from_client"]],
                    "ack": None if udp else p["ack"],
                    "window": None if udp else p["window"],
                    "ip_len": 28 + p["payload"] if udp else 40 + p["payload"],
                    "payload_len": p["payload"],
                }
            )
    return rows


_SHARED: list[duckdb.DuckDBPyConnection] = []


def shared() -> duckdb.DuckDBPyConnection:
    if not _SHARED:
        _SHARED.append(flows_db({}))
    return _SHARED[0]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conversation, min_size=1, max_size=5))
def test_flows_invariants(conversations: list[list[dict[str, Any]]]) -> None:
    con = shared()
    con.execute("delete from raw_packets")
    rows = rows_for(conversations)
    load_frames(con, {"node/p.pcap": RAW_PACKETS.frame(rows)})
    flows = con.sql("select * from flows").pl()
    assert flows.height >= 1
    # every packet is counted once (the 5-tuple decides which conversation it is in)
    assert int(flows["orig_pkts"].sum() + flows["resp_pkts"].sum()) == len(rows)
    assert flows["uid"].n_unique() == flows.height
    for flow in flows.iter_rows(named=True):
        check_flow(flow)


def check_flow(flow: dict[str, Any]) -> None:
    history = flow["history"] or ""
    if flow["proto"] == "tcp":
        assert flow["conn_state"] in TCP_STATES, flow
        assert TCP_HISTORY.fullmatch(history), flow
        for once in "ADIQadiq":
            assert history.count(once) <= 1, flow
    else:
        assert flow["conn_state"] in UDP_STATES, flow
        assert UDP_HISTORY.fullmatch(history), flow
    assert (
        (flow["duration"] is None) == (flow["orig_bytes"] is None) == (flow["resp_bytes"] is None)
    )
    if flow["duration"] is not None:
        assert flow["duration"] > 0 and flow["orig_bytes"] >= 0 and flow["resp_bytes"] >= 0, flow
    assert flow["missed_bytes"] >= 0, flow
    assert flow["orig_pkts"] + flow["resp_pkts"] >= 1, flow
    assert COMMUNITY_ID.fullmatch(flow["community_id"]), flow
    assert flow["uid"].startswith("C") and len(flow["uid"]) == 12, flow
    if flow["rtt_syn_synack_ms"] is not None:
        assert flow["rtt_syn_synack_ms"] >= 0, flow


def test_same_rows_every_time() -> None:
    conversations = [
        [
            dict(p, delay=d, flags=f)
            for p, d, f in zip([BASE] * 6, DELAYS_NS[1:], (2, 18, 16, 17, 4, 24), strict=True)
        ]
    ]
    rows = RAW_PACKETS.frame(rows_for(conversations))
    first = flows_db({"node/a.pcap": rows}).sql("select * from flows").pl()
    second = flows_db({"node/a.pcap": rows}).sql("select * from flows").pl()
    assert first.height > 1 and first.equals(second)


def test_empty_capture_has_no_flows() -> None:
    con = flows_db({"node/empty.pcap": pl.DataFrame(schema=RAW_PACKETS.parser_schema())})
    assert con.execute("select count(*) from flows").fetchall() == [(0,)]

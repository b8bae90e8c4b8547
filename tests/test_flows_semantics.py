"""Zeek conn.log rules the public traces do not exercise, on hand-made captures.

Each expected value is what Zeek's TCP/UDP/ICMP analyzers do for that packet sequence
(TCPSessionAdapter.cc, IPBasedAnalyzer.cc, conn/main.zeek); the comment says which rule.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.flows_packets import flows_db, load_frames, packets_frame
from tests.flows_scenarios import T0, Pkt, Tcp, write_pcap
from tests.test_flows_zeek import packet_community_ids, tshark_community_ids

COLUMNS = (
    "orig_h, orig_p, resp_h, resp_p, proto, duration, orig_bytes, resp_bytes, conn_state, "
    "history, missed_bytes, orig_pkts, resp_pkts"
)


_SHARED: list[duckdb.DuckDBPyConnection] = []
_NAMES = itertools.count()


def run(tmp_path: Path, pkts: list[Pkt]) -> list[dict[str, Any]]:
    """Flows of one scenario (each is a source file of its own in one shared database)."""
    if not _SHARED:
        _SHARED.append(flows_db({}))
    con = _SHARED[0]
    name = f"node/s{next(_NAMES)}.pcap"
    load_frames(con, {name: packets_frame(write_pcap(tmp_path / "t.pcap", pkts))})
    rows = con.execute(
        f"select {COLUMNS}, first_seq, rtt_syn_synack_ms, rtt_synack_ack_ms from flows"
        " where source_file = ? order by ts, first_frame_no",
        [name],
    )
    return [dict(zip([d[0] for d in rows.description], r, strict=True)) for r in rows.fetchall()]


def brief(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["conn_state"], r["history"], r["orig_pkts"], r["resp_pkts"]) for r in rows]


def test_normal_connection(tmp_path: Path) -> None:
    c = Tcp()
    c.cli("S"), c.srv("SA"), c.cli("A"), c.cli("PA", 100), c.srv("PA", 300)
    c.cli("FA"), c.srv("FA"), c.cli("A")
    [row] = run(tmp_path, c.pkts)
    assert brief([row]) == [("SF", "ShADdFf", 5, 3)]
    assert (row["orig_bytes"], row["resp_bytes"], row["missed_bytes"]) == (100, 300, 0)
    # duration stops at the FIN that closed the second side: the last ACK is not counted
    assert row["duration"] == pytest.approx(0.06)
    assert row["first_seq"] == 1000
    assert row["rtt_syn_synack_ms"] == pytest.approx(10.0)
    assert row["rtt_synack_ack_ms"] == pytest.approx(10.0)


def test_unanswered_syn_retransmissions_are_several_attempts(tmp_path: Path) -> None:
    # the attempt timer removes the connection 5 s after the SYN; the next SYN opens a new one
    c = Tcp()
    for at in (0, 1, 3, 7, 15, 31):
        c.cli("S", at=T0 + at, seq=1000)
    rows = run(tmp_path, c.pkts)
    assert brief(rows) == [
        ("S0", "S", 3, 0),
        ("S0", "S", 1, 0),
        ("S0", "S", 1, 0),
        ("S0", "S", 1, 0),
    ]
    assert [r["duration"] for r in rows] == [pytest.approx(3.0), None, None, None]
    assert [r["orig_bytes"] for r in rows] == [0, None, None, None]


def test_rejected_twice(tmp_path: Path) -> None:
    # a SYN after a RST is always a new connection (IsReuse on a closed connection)
    c = Tcp()
    c.cli("S", seq=1000), c.srv("RA", seq=0)
    c.cli("S", at=T0 + 1, seq=1000), c.srv("RA", seq=0)
    assert brief(run(tmp_path, c.pkts)) == [("REJ", "Sr", 1, 1), ("REJ", "Sr", 1, 1)]


def test_port_reused_with_a_new_isn(tmp_path: Path) -> None:
    # SNAT reusing a source port: same 5-tuple, new ISN, 2 s after the previous close
    c = Tcp()
    c.cli("S"), c.srv("SA"), c.cli("A"), c.cli("FA"), c.srv("FA"), c.cli("A")
    d = Tcp(t0=T0 + 2, cisn=900_000, sisn=70_000)
    d.cli("S"), d.srv("SA"), d.cli("A"), d.cli("PA", 10), d.srv("A")
    rows = run(tmp_path, c.pkts + d.pkts)
    assert brief(rows) == [("SF", "ShAFf", 4, 2), ("S1", "ShADa", 3, 2)]
    assert [r["first_seq"] for r in rows] == [1000, 900_000]


@pytest.mark.parametrize(
    ("script", "state", "history"),
    [
        # originator SYN then its own RST, responder silent: the RSTOS0 history pattern
        ("cS cR", "RSTOS0", "SR"),
        ("cS sSA cA cRA", "RSTO", "ShAR"),
        ("cS sSA cA sRA", "RSTR", "ShAr"),
        ("cS sSA cA cPA:10 sPA:10", "S1", "ShADd"),
        ("cS sSA cA cFA", "S2", "ShAF"),
        ("cS sSA cA sFA", "S3", "ShAf"),
        ("cS cF", "SH", "SF"),
        # a RST after both FINs does not undo the close; nor does a FIN after a RST+peer FIN
        ("cS sSA cA cFA sFA cRA", "SF", "ShAFfR"),
        ("cS sSA cA cFA cRA sFA", "SF", "ShAFRf"),
        # client ports are not likely server ports: midstream traffic keeps its direction
        ("cPA:5 sPA:7", "OTH", "Dd"),
        ("cPA:5", "OTH", "D"),
        # SYN+FIN is Q, FIN+RST is I
        ("cSF", "SH", "Q"),
        ("cS sSA cA cFRA", "RSTO", "ShAI"),
    ],
)
def test_conn_states(tmp_path: Path, script: str, state: str, history: str) -> None:
    c = Tcp()
    for step in script.split():
        side, _, data = step[1:].partition(":")
        (c.cli if step[0] == "c" else c.srv)(side, int(data or 0))
    [row] = run(tmp_path, c.pkts)
    assert (row["conn_state"], row["history"]) == (state, history)


@pytest.mark.parametrize(
    ("script", "state", "history"),
    [
        # the first packet comes from port 80 (a likely server port): flipped, '^'
        ("sSA sFA", "SHR", "^hf"),
        ("sSA sRA", "RSTRH", "^hr"),
        ("sPA:5 cA", "OTH", "^dA"),
    ],
)
def test_flipped_connections(tmp_path: Path, script: str, state: str, history: str) -> None:
    c = Tcp()
    for step in script.split():
        side, _, data = step[1:].partition(":")
        (c.cli if step[0] == "c" else c.srv)(side, int(data or 0))
    [row] = run(tmp_path, c.pkts)
    assert (row["conn_state"], row["history"]) == (state, history)
    assert (row["orig_h"], row["orig_p"], row["resp_p"]) == ("10.0.0.1", 40000, 80)


def test_syn_fin_repeated_is_a_new_connection(tmp_path: Path) -> None:
    # the SYN+FIN closed the connection, so the same SYN+FIN again is a reuse
    c = Tcp()
    c.cli("SF", seq=1000), c.cli("SF", seq=1000)
    assert brief(run(tmp_path, c.pkts)) == [("SH", "Q", 1, 0), ("SH", "Q", 1, 0)]


def test_retransmissions_zero_windows_and_scaled_letters(tmp_path: Path) -> None:
    c = Tcp()
    c.cli("S"), c.srv("SA"), c.cli("A")
    first = c.cli("PA", 100)
    for _ in range(10):  # the same segment again: T on the 1st and the 10th retransmission
        c.cli("PA", 100, seq=first.seq)
    zero = c.srv("A")
    zero.win = 0
    [row] = run(tmp_path, c.pkts)
    assert row["history"] == "ShADTTaw"  # the zero-window ACK is also the first pure ACK
    assert row["orig_bytes"] == 100


def test_gap_is_missed_bytes(tmp_path: Path) -> None:
    c = Tcp()
    c.cli("S"), c.srv("SA"), c.cli("A"), c.cli("PA", 100)
    c.cli("PA", 100, seq=1201)  # bytes 101..200 never captured
    c.next_seq["c"] = 1301
    c.srv("A"), c.cli("FA"), c.srv("FA"), c.cli("A")
    [row] = run(tmp_path, c.pkts)
    assert (row["orig_bytes"], row["missed_bytes"]) == (300, 100)
    assert row["history"] == "ShADGaFf"


def test_sequence_numbers_wrap(tmp_path: Path) -> None:
    c = Tcp(cisn=2**32 - 50, sisn=2**32 - 1)
    c.cli("S"), c.srv("SA"), c.cli("A"), c.cli("PA", 100), c.srv("PA", 70), c.cli("FA")
    c.srv("FA"), c.cli("A")
    [row] = run(tmp_path, c.pkts)
    assert (row["orig_bytes"], row["resp_bytes"], row["conn_state"]) == (100, 70, "SF")
    assert row["first_seq"] == 2**32 - 50


def test_close_delay(tmp_path: Path) -> None:
    # packets within 5 s of the completed close still belong to it; later ones open a new one
    c = Tcp()
    c.cli("S"), c.srv("SA"), c.cli("A"), c.cli("FA"), c.srv("FA")
    c.cli("A", at=T0 + 3)
    c.cli("A", at=T0 + 9)
    rows = run(tmp_path, c.pkts)
    assert brief(rows) == [("SF", "ShAFf", 4, 2), ("OTH", "A", 1, 0)]


def test_udp(tmp_path: Path) -> None:
    q = [
        Pkt(T0, "10.0.0.1", "10.0.0.53", "udp", 33000, 53, data=30),
        Pkt(T0 + 0.002, "10.0.0.53", "10.0.0.1", "udp", 53, 33000, data=90),
        # 61 s later: udp_inactivity_timeout (1 min) expired, a new flow
        Pkt(T0 + 61, "10.0.0.1", "10.0.0.53", "udp", 33000, 53, data=30),
        # a reply whose request was not captured: flipped to the likely server port, SHR
        Pkt(T0 + 70, "10.0.0.53", "10.0.0.9", "udp", 53, 41000, data=90),
        # towards the limited broadcast address nothing is flipped
        Pkt(T0 + 80, "10.0.0.5", "255.255.255.255", "udp", 67, 68, data=300),
    ]
    rows = sorted(run(tmp_path, q), key=lambda r: r["orig_h"])
    assert [(r["orig_h"], r["orig_p"], r["conn_state"], r["history"]) for r in rows] == [
        ("10.0.0.1", 33000, "SF", "Dd"),
        ("10.0.0.1", 33000, "S0", "D"),
        ("10.0.0.5", 67, "S0", "D"),
        ("10.0.0.9", 41000, "SHR", "^d"),
    ]
    assert (rows[0]["orig_bytes"], rows[0]["resp_bytes"]) == (30, 90)


def test_icmp(tmp_path: Path) -> None:
    pkts = [
        Pkt(T0, "10.0.0.1", "10.0.0.2", "icmp", 8, 0, data=56),
        Pkt(T0 + 0.001, "10.0.0.2", "10.0.0.1", "icmp", 0, 0, data=56),
        Pkt(T0 + 1, "10.0.0.1", "10.0.0.2", "icmp", 8, 0, data=56),
        Pkt(T0 + 1.001, "10.0.0.2", "10.0.0.1", "icmp", 0, 0, data=56),
        # destination unreachable (port): a one-way flow keyed by type and code
        Pkt(T0 + 2, "10.0.0.254", "10.0.0.1", "icmp", 3, 3, data=28),
        Pkt(T0 + 3, "fd00::1", "fd00::2", "icmp", 128, 0, data=8),
        Pkt(T0 + 3.1, "fd00::2", "fd00::1", "icmp", 129, 0, data=8),
    ]
    rows = sorted(run(tmp_path, pkts), key=lambda r: r["orig_h"])
    assert [
        (r["orig_h"], r["orig_p"], r["resp_p"], r["proto"], r["conn_state"], r["history"])
        for r in rows
    ] == [
        ("10.0.0.1", 8, 0, "icmp", "OTH", None),
        ("10.0.0.254", 3, 3, "icmp", "OTH", None),
        ("fd00::1", 128, 129, "icmp", "OTH", None),
    ]
    # ICMP bytes are the message bytes after the 8-byte header (4 id/seq bytes + data here)
    assert (rows[0]["orig_pkts"], rows[0]["resp_pkts"]) == (2, 2)
    assert (rows[0]["orig_bytes"], rows[0]["resp_bytes"]) == (2 * 56, 2 * 56)


def test_ipv6_and_sctp(tmp_path: Path) -> None:
    c = Tcp(cli="2001:db8::1", srv="2001:db8::ffff:2", dport=443)
    c.cli("S"), c.srv("SA"), c.cli("A"), c.cli("PA", 20)
    sctp = [
        Pkt(T0 + 5, "10.0.0.1", "10.0.0.2", "sctp", 5000, 38412, data=16),
        Pkt(T0 + 5.1, "10.0.0.2", "10.0.0.1", "sctp", 38412, 5000, data=16),
    ]
    rows = sorted(run(tmp_path, c.pkts + sctp), key=lambda r: r["proto"])
    assert [(r["proto"], r["orig_h"], r["conn_state"], r["orig_pkts"]) for r in rows] == [
        ("sctp", "10.0.0.1", "OTH", 1),
        ("tcp", "2001:db8::1", "S1", 3),
    ]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_community_id_equals_tshark_on_synthetic_flows(tmp_path: Path) -> None:
    # one capture with every protocol shape Community ID treats differently
    pkts = []
    for cli, srv, dport in [
        ("10.0.0.1", "10.0.0.2", 80),
        ("10.0.0.9", "10.0.0.3", 80),  # the originator has the larger address
        ("127.0.0.1", "127.0.0.1", 22),  # equal addresses: the ports decide
        ("2001:db8::1", "2001:db8::ffff:2", 443),
        ("::ffff:10.1.2.3", "2001:db8::2", 8080),
    ]:
        c = Tcp(cli=cli, srv=srv, dport=dport)
        c.cli("S"), c.srv("SA"), c.cli("A")
        pkts += c.pkts
    pkts += [
        Pkt(T0 + 1, "10.0.0.1", "10.0.0.53", "udp", 33000, 53, data=30),
        Pkt(T0 + 1.1, "10.0.0.53", "10.0.0.1", "udp", 53, 33000, data=90),
        Pkt(T0 + 2, "10.0.0.2", "10.0.0.1", "icmp", 0, 0, data=8),  # a reply first
        Pkt(T0 + 2.1, "10.0.0.1", "10.0.0.2", "icmp", 8, 0, data=8),
        Pkt(T0 + 3, "10.0.0.254", "10.0.0.1", "icmp", 3, 3, data=28),
        Pkt(T0 + 3.1, "10.0.0.1", "10.0.0.254", "icmp", 11, 0, data=28),
        Pkt(T0 + 4, "fd00::2", "fd00::1", "icmp", 128, 0, data=8),
        Pkt(T0 + 4.1, "fd00::1", "fd00::2", "icmp", 135, 0, data=16),  # neighbour solicitation
        Pkt(T0 + 5, "10.0.0.7", "10.0.0.1", "sctp", 38412, 5000, data=16),
    ]
    path = write_pcap(tmp_path / "all.pcap", sorted(pkts, key=lambda p: p.t))
    con = flows_db({"node/all.pcap": packets_frame(path)})
    expected = tshark_community_ids(path)
    ours = packet_community_ids(con)
    assert len(ours) == len(pkts)
    assert [(f, expected.get(f)) for f, _ in ours] == ours

"""The linking rules of `connections` on hand-built packets: what is linked, and what is refused.

Each test writes the few packets a scenario needs straight into raw_packets (no pcap parsing) and
reads the views. The real-kernel acceptance is tests/test_connections_lab.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from tests.connections_packets import Capture, load, rows, store, tcp_exchange, udp_exchange

CLIENT = "10.10.0.5"
VIP = ("10.200.1.216", 9000)
BACKEND = ("10.10.1.2", 80)
OTHER_BACKEND = ("10.10.3.2", 80)


def pre(port: int) -> tuple[str, int, str, int]:
    return (CLIENT, port, *VIP)


def post(
    port: int, backend: tuple[str, int] = BACKEND, snat: str = CLIENT
) -> tuple[str, int, str, int]:
    return (snat, port, *backend)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    con = store(tmp_path_factory.mktemp("connections-rules") / "n.duckdb")
    yield con
    con.close()


def connections(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    return rows(con, "select * from connections order by client_port, dialed_ip, ts")


def test_pre_and_post_nat_legs_are_linked_by_the_isn(db: duckdb.DuckDBPyConnection) -> None:
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    far = Capture("n2", "eth0.pcap")
    tcp_exchange(veth, 0, pre(40000), isn=1000, ip_id=100)
    tcp_exchange(eth0, 5, post(40000), isn=1000, ip_id=100, ttl=63)
    tcp_exchange(far, 50, post(40000), isn=1000, ip_id=100, ttl=63)
    [c] = connections(load(db, [veth, eth0, far]))
    assert (c["match_status"], c["match_rule"], c["evidence"]) == ("matched", "tcp isn", "pcap")
    assert (c["client_ip"], c["client_port"], c["dialed_ip"], c["dialed_port"]) == pre(40000)
    assert (c["snat_ip"], c["snat_port"], c["backend_ip"], c["backend_port"]) == post(40000)
    assert (c["nat_kind"], c["dnat_node"], c["snat_class"]) == ("dnat", "n1", "none")
    assert (c["pre_node"], c["pre_source_file"]) == ("n1", "b/n1/veth1.pcap")
    assert (c["post_node"], c["post_source_file"]) == ("n1", "b/n1/eth0.pcap")
    assert c["nodes"] == ["n1", "n2"] and c["n_legs"] == 3
    assert c["pre_uid"] and c["post_uid"] and c["pre_community_id"] != c["post_community_id"]
    # each packet once, although three capture points saw the post-NAT leg's packets
    assert (c["orig_pkts"], c["resp_pkts"]) == (3, 2)
    assert (c["orig_payload_bytes"], c["resp_payload_bytes"]) == (78, 300)


def test_snat_source_and_kind(db: duckdb.DuckDBPyConnection) -> None:
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    tcp_exchange(veth, 0, pre(40000), isn=1000, ip_id=100)
    tcp_exchange(eth0, 5, post(61000, snat="172.18.0.5"), isn=1000, ip_id=100, ttl=63)
    [c] = connections(load(db, [veth, eth0]))
    assert (c["nat_kind"], c["snat_ip"], c["snat_port"]) == ("dnat+snat", "172.18.0.5", 61000)
    # no ip addr / kubectl input: the address is of no known kind
    assert c["snat_class"] == "other"


def test_same_isn_and_ip_id_on_two_candidates_is_ambiguous(db: duckdb.DuckDBPyConnection) -> None:
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    tcp_exchange(veth, 0, pre(40000), isn=1000, ip_id=100)
    tcp_exchange(eth0, 5, post(40000), isn=1000, ip_id=100, ttl=63)
    tcp_exchange(eth0, 7, post(40000, OTHER_BACKEND), isn=1000, ip_id=100, ttl=63)
    found = connections(load(db, [veth, eth0]))
    assert len(found) == 3
    assert {c["match_status"] for c in found} == {"ambiguous"}
    assert all(c["backend_ip"] is None and "tcp isn" in str(c["match_rule"]) for c in found)


def test_ip_id_breaks_a_tie_between_legs_with_the_same_isn(db: duckdb.DuckDBPyConnection) -> None:
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    tcp_exchange(veth, 0, pre(40000), isn=1000, ip_id=100)
    tcp_exchange(eth0, 5, post(40000), isn=1000, ip_id=100, ttl=63)
    tcp_exchange(eth0, 7, post(40000, OTHER_BACKEND), isn=1000, ip_id=555, ttl=63)
    found = connections(load(db, [veth, eth0]))
    matched = [c for c in found if c["match_status"] == "matched"]
    assert [(c["backend_ip"], c["backend_port"]) for c in matched] == [BACKEND]
    [other] = [c for c in found if c["match_status"] != "matched"]
    assert (other["match_status"], other["dialed_ip"]) == ("unmatched", OTHER_BACKEND[0])


def test_udp_is_linked_by_ip_id_and_length(db: duckdb.DuckDBPyConnection) -> None:
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    svc = ("10.200.1.100", 5005)
    for i, port in enumerate((1111, 2222)):
        udp_exchange(veth, i * 100, (CLIENT, port, *svc), ip_id=10 + i, reply_ip_id=90 + i)
        udp_exchange(
            eth0,
            i * 100 + 5,
            (CLIENT, port, "10.10.1.2", 5005),
            ip_id=10 + i,
            reply_ip_id=90 + i,
            ttl=63,
        )
    found = connections(load(db, [veth, eth0]))
    assert [(c["client_port"], c["match_status"], c["match_rule"]) for c in found] == [
        (1111, "matched", "udp ip id+length+time"),
        (2222, "matched", "udp ip id+length+time"),
    ]


def test_udp_datagrams_without_distinct_ip_ids_are_ambiguous(db: duckdb.DuckDBPyConnection) -> None:
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    svc = ("10.200.1.100", 5005)
    for i, port in enumerate((1111, 2222)):
        # IP ID 0 (DF-flagged sockets) and the same lengths both ways: nothing tells them apart
        udp_exchange(veth, i * 100, (CLIENT, port, *svc), ip_id=0, reply_ip_id=0)
        udp_exchange(
            eth0, i * 100 + 5, (CLIENT, port + 1, "10.10.1.2", 5005), ip_id=0, reply_ip_id=0, ttl=63
        )
    found = connections(load(db, [veth, eth0]))
    assert len(found) == 4
    assert {c["match_status"] for c in found} == {"ambiguous"}


def test_a_post_nat_leg_alone_is_unmatched(db: duckdb.DuckDBPyConnection) -> None:
    far = Capture("n2", "eth0.pcap")
    tcp_exchange(far, 50, post(40000), isn=1000, ip_id=100, ttl=63)
    [c] = connections(load(db, [far]))
    assert (c["match_status"], c["match_rule"], c["evidence"]) == ("unmatched", None, "pcap")
    assert (c["client_ip"], c["client_port"], c["dialed_ip"], c["dialed_port"]) == post(40000)
    assert c["backend_ip"] is None and c["dnat_node"] is None and c["n_legs"] == 1


def test_legs_without_a_ttl_step_are_not_paired(db: duckdb.DuckDBPyConnection) -> None:
    """Two tuples with one ISN but the same TTL are not the two sides of a forwarding node."""
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    tcp_exchange(veth, 0, pre(40000), isn=1000, ip_id=100)
    tcp_exchange(eth0, 5, post(40000), isn=1000, ip_id=100)
    found = connections(load(db, [veth, eth0]))
    assert len(found) == 2 and {c["match_status"] for c in found} == {"unmatched"}


def test_equal_times_are_ordered_by_ttl(db: duckdb.DuckDBPyConnection) -> None:
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    tcp_exchange(veth, 0, pre(40000), isn=1000, ip_id=100)
    tcp_exchange(eth0, 0, post(40000), isn=1000, ip_id=100, ttl=63)
    [c] = connections(load(db, [veth, eth0]))
    assert c["match_status"] == "matched" and c["dialed_ip"] == VIP[0]


def test_three_tuples_of_one_isn_on_one_node_are_ambiguous(db: duckdb.DuckDBPyConnection) -> None:
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    tcp_exchange(veth, 0, pre(40000), isn=1000, ip_id=100)
    tcp_exchange(eth0, 5, post(40000), isn=1000, ip_id=100, ttl=63)
    tcp_exchange(eth0, 9, post(41000, snat="172.18.0.5"), isn=1000, ip_id=100, ttl=62)
    found = connections(load(db, [veth, eth0]))
    assert len(found) == 3 and {c["match_status"] for c in found} == {"ambiguous"}


def test_copies_on_the_any_capture_count_once(db: duckdb.DuckDBPyConnection) -> None:
    veth = Capture("n1", "veth1.pcap")
    any_cap = Capture("n1", "any.pcap", link_type="sll2", iface="3")
    eth0 = Capture("n1", "eth0.pcap")
    tcp_exchange(veth, 0, pre(40000), isn=1000, ip_id=100)
    tcp_exchange(any_cap, 1, pre(40000), isn=1000, ip_id=100)
    tcp_exchange(any_cap, 5, post(40000), isn=1000, ip_id=100, ttl=63)
    tcp_exchange(eth0, 6, post(40000), isn=1000, ip_id=100, ttl=63)
    con = load(db, [veth, any_cap, eth0])
    [c] = connections(con)
    assert (c["orig_pkts"], c["resp_pkts"], c["n_legs"]) == (3, 2, 2)
    # the single-interface capture is the one shown for each leg
    assert (c["pre_source_file"], c["post_source_file"]) == ("b/n1/veth1.pcap", "b/n1/eth0.pcap")
    assert sorted(leg["capture_files"] for leg in c["legs"]) == [2, 2]  # type: ignore[union-attr]
    [leg_packets] = rows(con, "select count(*) as n from int_legs__packets")
    assert leg_packets["n"] == 10  # 5 packets per leg, the any.pcap copies merged


def test_a_port_reused_with_a_new_isn_is_another_connection(db: duckdb.DuckDBPyConnection) -> None:
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    for at, isn, backend in ((0, 1000, BACKEND), (2_000_000, 9000, OTHER_BACKEND)):
        tcp_exchange(veth, at, pre(40000), isn=isn, ip_id=isn // 10)
        tcp_exchange(eth0, at + 5, post(40000, backend), isn=isn, ip_id=isn // 10, ttl=63)
    found = connections(load(db, [veth, eth0]))
    assert [(c["match_status"], c["backend_ip"]) for c in found] == [
        ("matched", BACKEND[0]),
        ("matched", OTHER_BACKEND[0]),
    ]


@pytest.mark.parametrize("offset_us", [0, 2_500_000, -750_000])
def test_clock_offset_from_packets_both_ways(db: duckdb.DuckDBPyConnection, offset_us: int) -> None:
    """n2's clock runs offset_us ahead; the wire takes 100 us each way."""
    n1 = [Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")]
    n2 = [Capture("n2", "eth0.pcap"), Capture("n2", "veth2.pcap")]
    a, b = (CLIENT, 40000), BACKEND
    for i in range(5):
        t = i * 1000
        # client -> backend: enters n1 (64), leaves it (63), enters n2 (63), leaves it (62)
        n1[0].add(t, a, b, flags="A", seq=i, ack=0, ip_id=i, ttl=64)
        n1[1].add(t + 10, a, b, flags="A", seq=i, ack=0, ip_id=i, ttl=63)
        n2[0].add(t + 110 + offset_us, a, b, flags="A", seq=i, ack=0, ip_id=i, ttl=63)
        n2[1].add(t + 120 + offset_us, a, b, flags="A", seq=i, ack=0, ip_id=i, ttl=62)
        # backend -> client, the other way round
        n2[1].add(t + 500 + offset_us, b, a, flags="A", seq=50 + i, ack=0, ip_id=50 + i, ttl=64)
        n2[0].add(t + 510 + offset_us, b, a, flags="A", seq=50 + i, ack=0, ip_id=50 + i, ttl=63)
        n1[1].add(t + 610, b, a, flags="A", seq=50 + i, ack=0, ip_id=50 + i, ttl=63)
        n1[0].add(t + 620, b, a, flags="A", seq=50 + i, ack=0, ip_id=50 + i, ttl=62)
    [o] = rows(load(db, n1 + n2), "select * from clock_offsets")
    assert (o["node_a"], o["node_b"]) == ("n1", "n2")
    assert o["offset_ms"] == pytest.approx(offset_us / 1000, abs=0.001)
    assert o["one_way_delay_ms"] == pytest.approx(0.1, abs=0.001)
    assert (o["packets_a_to_b"], o["packets_b_to_a"], o["packets_used"]) == (5, 5, 10)
    assert o["spread_ms"] == pytest.approx(0.0, abs=0.001)

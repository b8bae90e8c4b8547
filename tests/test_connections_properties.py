"""Property: whatever the packets, a link natlens makes is a true link, and no leg is lost.

Random NAT scenarios on one translating node and one backend node, drawn from tiny ISN, IP ID and
timing spaces so that look-alike legs (same ISN, same IP ID, same moment) are common. The
packets alone must never link a pre-NAT leg to a post-NAT leg of another connection: such cases
have to come out `ambiguous` (or `unmatched`), and every captured leg must be in exactly one row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.connections_packets import Capture, load, rows, store, tcp_exchange, udp_exchange

VIP = ("10.200.1.216", 9000)
BACKENDS = [("10.10.1.2", 80), ("10.10.3.2", 80)]

connection = st.fixed_dictionaries(
    {
        "proto": st.sampled_from(["tcp", "udp"]),
        "isn": st.sampled_from([1000, 2000]),
        "ip_id": st.sampled_from([0, 7]),
        "reply_ip_id": st.sampled_from([0, 9]),
        "backend": st.sampled_from(BACKENDS),
        "snat": st.booleans(),
        "at_us": st.integers(0, 3),
        "post_delay_us": st.integers(1, 3),
        "backend_node_sees": st.booleans(),
    }
)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    con = store(tmp_path_factory.mktemp("connections-properties") / "n.duckdb")
    yield con
    con.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=st.lists(connection, min_size=1, max_size=5))
def test_links_are_true_and_no_leg_is_lost(
    db: duckdb.DuckDBPyConnection, scenario: list[dict[str, Any]]
) -> None:
    veth, eth0 = Capture("n1", "veth1.pcap"), Capture("n1", "eth0.pcap")
    far = Capture("n2", "eth0.pcap")
    truth = set()
    legs = set()
    for i, c in enumerate(scenario):
        port = 40000 + i  # one client port per connection: distinct pre-NAT tuples
        backend = c["backend"]
        pre = ("10.10.0.5", port, *VIP)
        post = ("172.18.0.5", 50000 + i, *backend) if c["snat"] else ("10.10.0.5", port, *backend)
        truth.add((c["proto"], pre, post))
        legs |= {(c["proto"], pre), (c["proto"], post)}
        at, later = c["at_us"], c["at_us"] + c["post_delay_us"]
        ip_id, reply = c["ip_id"], c["reply_ip_id"]
        if c["proto"] == "tcp":
            isn = c["isn"]
            tcp_exchange(veth, at, pre, isn=isn, ip_id=ip_id, reply_ip_id=reply)
            tcp_exchange(eth0, later, post, isn=isn, ip_id=ip_id, reply_ip_id=reply, ttl=63)
            if c["backend_node_sees"]:
                tcp_exchange(far, later + 5, post, isn=isn, ip_id=ip_id, reply_ip_id=reply, ttl=63)
        else:
            udp_exchange(veth, at, pre, ip_id=ip_id, reply_ip_id=reply)
            udp_exchange(eth0, later, post, ip_id=ip_id, reply_ip_id=reply, ttl=63)
            if c["backend_node_sees"]:
                udp_exchange(far, later + 5, post, ip_id=ip_id, reply_ip_id=reply, ttl=63)
    load(db, [veth, eth0, far])
    found = rows(
        db,
        "select conn_id, link_status, proto, client_ip, client_port, dialed_ip, dialed_port, "
        "snat_ip, snat_port, backend_ip, backend_port, orig_h, orig_p, resp_h, resp_p, leg_id "
        "from int_connections__legs",
    )
    # never matched wrongly
    for r in found:
        if r["link_status"] == "linked":
            pre = (r["client_ip"], r["client_port"], r["dialed_ip"], r["dialed_port"])
            post = (r["snat_ip"], r["snat_port"], r["backend_ip"], r["backend_port"])
            assert (r["proto"], pre, post) in truth, r
        else:
            assert r["link_status"] in ("ambiguous", "unmatched"), r
    # every captured leg in exactly one connection (a leg per node: the backend node's copy of a
    # post-NAT leg is a leg of its own)
    per_leg: dict[str, set[str]] = {}
    for r in found:
        per_leg.setdefault(str(r["leg_id"]), set()).add(str(r["conn_id"]))
    assert all(len(conns) == 1 for conns in per_leg.values()), per_leg
    seen = {(r["proto"], (r["orig_h"], r["orig_p"], r["resp_h"], r["resp_p"])) for r in found}
    assert seen == legs

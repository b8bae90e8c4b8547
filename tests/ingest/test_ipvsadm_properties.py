"""Properties of the ipvsadm ingestor: it never raises, it accounts for every record, and what
ipvsadm prints (formats from ipvsadm.c, re-implemented here) parses back to the same values."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.bundle import decode_text
from pipeline.ingest import ipvsadm

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ipvsadm"
INPUTS = sorted(
    p for p in FIXTURES.glob("*.txt") if ".expected." not in p.name and p.name != "SOURCES.md"
)
TEXTS = [decode_text(p.read_bytes()) for p in INPUTS]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", ipvsadm.KINDS)
@SETTINGS
@given(text=st.text(max_size=300))
def test_arbitrary_text_never_raises(kind: str, text: str) -> None:
    ipvsadm.detect(text)
    ipvsadm.parse(text, kind).check_counts()


def _mutate(text: str, ops: list[tuple[int, int, int]]) -> str:
    """Delete or duplicate characters, cut lines, drop or repeat lines."""
    lines = text.splitlines()
    for op, where, arg in ops:
        if not lines:
            break
        i = where % len(lines)
        line = lines[i]
        pos = arg % (len(line) + 1)
        if op == 0:
            lines[i] = line[:pos] + line[pos + 1 :]
        elif op == 1:
            lines[i] = line[:pos] + line[pos : pos + 1] * 2 + line[pos + 1 :]
        elif op == 2:
            lines[i] = line[:pos]
        elif op == 3:
            del lines[i]
        else:
            lines.insert(i, line)
    return "\n".join(lines)


@SETTINGS
@given(
    which=st.integers(0, len(TEXTS) - 1),
    ops=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10**4), st.integers(0, 10**4))),
)
def test_mutated_fixtures_never_raise(which: int, ops: list[tuple[int, int, int]]) -> None:
    text = _mutate(TEXTS[which], ops)
    detection = ipvsadm.detect(text)
    kinds = {detection.kind} if detection else set()
    for kind in kinds | {"ipvsadm_list", "proc_ip_vs"}:
        ipvsadm.parse(text, kind).check_counts()


# -- round trip through ipvsadm's own print formats ----------------------------------------------

ipv4 = st.integers(1, 2**32 - 2).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(1, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
ports = st.integers(0, 65535)
counters = st.integers(0, 2**50)


def _largenum(value: int, exact: bool) -> str:
    """ipvsadm.c print_largenum()."""
    if exact:
        width = len(str(value))
        return f"{value:{9 if width <= 8 else width + 1}d}"
    for limit, div, suffix in (
        (10**8, 1, ""),
        (10**9, 10**3, "K"),
        (10**11, 10**6, "M"),
        (10**14, 10**9, "G"),
    ):
        if value < limit:
            return f"{value // div:8d}{suffix}" if suffix else f"{value:9d}"
    return f"{value // 10**12:8d}T"


def _expanded(value: int, exact: bool) -> int:
    if exact or value < 10**8:
        return value
    for limit, div in ((10**9, 10**3), (10**11, 10**6), (10**14, 10**9)):
        if value < limit:
            return value // div * div
    return value // 10**12 * 10**12


def _addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


services = st.lists(
    st.tuples(
        st.sampled_from(["TCP", "UDP", "SCTP"]),
        st.one_of(ipv4, ipv6),
        ports,
        st.sampled_from(["rr", "wrr", "lc", "wlc", "sh", "mh", "sed", "nq"]),
        st.one_of(st.none(), st.integers(1, 86400 * 31)),
        st.lists(
            st.tuples(
                st.one_of(ipv4, ipv6),
                ports,
                st.sampled_from(["Masq", "Route", "Tunnel", "Local"]),
                st.integers(0, 65535),
                st.integers(0, 2**31),
                st.integers(0, 2**31),
            ),
            max_size=4,
        ),
    ),
    min_size=1,
    max_size=4,
)


@SETTINGS
@given(svcs=services)
def test_list_output_round_trips(svcs: list[tuple[Any, ...]]) -> None:
    lines = [
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    ]
    for proto, vip, vport, sched, persistent, dests in svcs:
        line = f"{proto}  {_addr(vip, vport)} {sched}"
        lines.append(line + (f" persistent {persistent}" if persistent else ""))
        for ip, port, fwd, weight, active, inact in dests:
            lines.append(
                f"  -> {_addr(ip, port):<28} {fwd:<7} {weight:<6} {active:<10} {inact:<10}"
            )
    chunk = ipvsadm.parse("\n".join(lines) + "\n", "ipvsadm_list")
    chunk.check_counts()
    assert chunk.records_rejected == 0
    got = chunk.frames["raw_ipvs_services"].select(
        "proto", "vip", "vport", "scheduler", "persistent_s"
    )
    assert got.rows() == [
        (p.lower(), str(ipaddress.ip_address(v)), vp, s, pers) for p, v, vp, s, pers, _ in svcs
    ]
    backends = chunk.frames["raw_ipvs_backends"].select(
        "vip", "backend_ip", "backend_port", "forward", "weight", "active_conn", "inact_conn"
    )
    assert backends.rows() == [(v, *d) for _, v, _, _, _, ds in svcs for d in ds]


@SETTINGS
@given(
    exact=st.booleans(),
    rows=st.lists(
        st.tuples(ipv4, ports, st.tuples(counters, counters, counters, counters, counters)),
        min_size=1,
        max_size=5,
    ),
)
def test_stats_output_round_trips(exact: bool, rows: list[tuple[Any, ...]]) -> None:
    lines = [
        f"{'Prot LocalAddress:Port':<33} {'Conns':>8} {'InPkts':>8} {'OutPkts':>8}"
        f" {'InBytes':>8} {'OutBytes':>8}",
        "  -> RemoteAddress:Port",
    ]
    for ip, port, values in rows:
        name = f"TCP  {_addr(ip, port)}"[:33]
        lines.append(f"{name:<33}" + "".join(_largenum(v, exact) for v in values))
    chunk = ipvsadm.parse("\n".join(lines), "ipvsadm_list")
    chunk.check_counts()
    assert chunk.records_rejected == 0
    frame = chunk.frames["raw_ipvs_services"]
    columns = ["conns", "in_pkts", "out_pkts", "in_bytes", "out_bytes"]
    assert frame.select(columns).rows() == [
        tuple(_expanded(v, exact) for v in values) for _, _, values in rows
    ]
    assert frame["is_exact"].to_list() == [
        exact or all(v < 10**8 for v in values) for _, _, values in rows
    ]
    assert set(frame["format"]) == {"stats"}

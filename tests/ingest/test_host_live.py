"""Oracle: real `ip` output from a throwaway network namespace (root only, skipped otherwise).

Builds a small node (veth to a peer namespace, a bridge, an ifb device holding /32 service
addresses like kube-ipvs0, IPv6, a secondary with a label, gateway/prefsrc/multipath routes),
then checks that every form of `ip` output parses without rejects, that all forms agree with
`ip -j`, and that what we configured is what we read back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import polars as pl
import pytest

from pipeline.ingest import host
from pipeline.ingest.records import ParsedChunk

pytestmark = pytest.mark.root

SETUP = [
    "link set lo up",
    "link add eth0 type veth peer name peer0 netns {peer}",
    "addr add 172.18.0.5/16 dev eth0",
    "addr add 172.18.0.50/16 dev eth0 label eth0:vip",
    "-6 addr add fc00:f853:ccd:e793::5/64 dev eth0 nodad",
    "link set eth0 up",
    "link add kube-ipvs0 type ifb",
    "addr add 10.200.1.1/32 dev kube-ipvs0",
    "addr add 10.200.1.10/32 dev kube-ipvs0",
    "link add cni0 type bridge",
    "addr add 10.10.2.1/24 dev cni0",
    "link set cni0 up",
    "route add default via 172.18.0.1 dev eth0",
    "route add 10.10.1.0/24 via 172.18.0.2 dev eth0 proto static metric 100",
    "route add 192.168.50.0/24 via 172.18.0.1 dev eth0 src 172.18.0.5",
    "route add 10.98.0.0/16 nexthop via 172.18.0.2 dev eth0 nexthop via 172.18.0.3 dev eth0",
    "route add blackhole 10.10.250.0/24",
]


def _ip(ns: str, *args: str) -> str:
    done = subprocess.run(
        ["ip", "-n", ns, *args], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


@pytest.fixture(scope="module")
def node() -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2")
    name, peer = f"natlens-host-{os.getpid()}", f"natlens-host-{os.getpid()}-peer"
    made = []
    try:
        for ns in (name, peer):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
            made.append(ns)
        for command in SETUP:
            _ip(name, *command.format(peer=peer).split())
    except subprocess.CalledProcessError as exc:
        for ns in made:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        pytest.skip(f"cannot build the test namespace: {exc.stderr!r}")
    try:
        yield name
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def _parse(text: str, kind: str) -> ParsedChunk:
    detection = host.detect(text)
    assert detection is not None and detection.kind == kind, text[:200]
    chunk = host.parse(text, kind)
    chunk.check_counts()
    assert chunk.errors == [], chunk.errors
    return chunk


def _rows(frame: pl.DataFrame, cols: list[str]) -> list[tuple[object, ...]]:
    return sorted(frame.select(cols).iter_rows(), key=repr)


def test_address_forms_agree_with_json(node: str) -> None:
    cols = ["ifindex", "ifname", "family", "local", "prefixlen", "scope", "is_secondary", "label"]
    reference = _parse(_ip(node, "-j", "addr"), "ip-addr-json").frames["raw_host_addrs"]
    for args in (["addr"], ["-d", "addr"], ["-j", "-p", "addr"], ["-j", "-d", "addr"]):
        kind = "ip-addr-json" if "-j" in args else "ip-addr"
        frame = _parse(_ip(node, *args), kind).frames["raw_host_addrs"]
        assert _rows(frame, [*cols, "mac", "oper_state", "mtu"]) == _rows(
            reference, [*cols, "mac", "oper_state", "mtu"]
        ), args
    brief = _parse(_ip(node, "-br", "addr"), "ip-addr-brief").frames["raw_host_addrs"]
    assert _rows(brief, ["ifname", "local", "prefixlen"]) == _rows(
        reference, ["ifname", "local", "prefixlen"]
    )
    secondary = reference.filter(pl.col("local") == "172.18.0.50").row(0, named=True)
    assert (secondary["is_secondary"], secondary["label"]) == (True, "eth0:vip")
    assert set(reference.filter(pl.col("ifname") == "kube-ipvs0")["local"]) == {
        "10.200.1.1",
        "10.200.1.10",
    }


def test_route_forms_agree_with_json(node: str) -> None:
    for table in ([], ["show", "table", "all"]):
        json_frame = _parse(_ip(node, "-j", "route", *table), "ip-route-json")
        text_frame = _parse(_ip(node, "route", *table), "ip-route")
        drop = ("format", "source_line")
        json_rows = json_frame.frames["raw_host_routes"].drop(drop)
        assert json_rows.equals(text_frame.frames["raw_host_routes"].drop(drop)), table
    routes = json_frame.frames["raw_host_routes"]
    assert routes.filter(pl.col("dst") == "10.98.0.0/16").height == 2  # one row per nexthop
    src = routes.filter(pl.col("dst") == "192.168.50.0/24").row(0, named=True)
    assert (src["gateway"], src["prefsrc"]) == ("172.18.0.1", "172.18.0.5")
    local = routes.filter((pl.col("table_name") == "local") & (pl.col("dev") == "kube-ipvs0"))
    assert set(local["dst"]) == {"10.200.1.1/32", "10.200.1.10/32"}

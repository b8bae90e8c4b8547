"""ip addr / ip route ingestor: the JSON and text forms of one host state agree, records are
located, and damage is rejected record by record."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pipeline.ingest import host
from pipeline.ingest.host_text import NOT_A_LINE
from pipeline.ingest.records import ParsedChunk

FIXTURES = Path(__file__).parent.parent / "fixtures"
HOST = FIXTURES / "host"

ADDR_KEY = [
    "ifindex", "ifname", "family", "local", "prefixlen", "scope", "is_secondary", "label",
    "addr_flags",
]  # fmt: skip
LINK_KEY = ["link_type", "mac", "oper_state", "link_flags", "mtu", "master"]
BRIEF_KEY = ["ifname", "oper_state", "family", "local", "prefixlen"]


def _parse(name: str) -> ParsedChunk:
    text = (HOST / name).read_text()
    detection = host.detect(text)
    assert detection is not None, name
    chunk = host.parse(text, detection.kind)
    chunk.check_counts()
    return chunk


def _addrs(name: str) -> pl.DataFrame:
    return _parse(name).frames["raw_host_addrs"]


def _routes(name: str) -> pl.DataFrame:
    return _parse(name).frames["raw_host_routes"].drop("format", "source_line")


def _rows(frame: pl.DataFrame, cols: list[str]) -> list[tuple[object, ...]]:
    return sorted(frame.select(cols).iter_rows(), key=repr)


@pytest.mark.parametrize(
    "name,kind",
    [
        ("ip-j-addr.json", "ip-addr-json"),
        ("ip-j-p-addr.json", "ip-addr-json"),
        ("ip-j-route-table-all.json", "ip-route-json"),
        ("ip-addr.txt", "ip-addr"),
        ("ip-o-addr.txt", "ip-addr"),
        ("ip-br-addr.txt", "ip-addr-brief"),
        ("ip-route.txt", "ip-route"),
        ("bad-elements-ip-j-route.json", "ip-route-json"),
        ("seed-ip-br-c-addr-loop.txt", "ip-addr-brief"),
    ],
)
def test_detects_each_form(name: str, kind: str) -> None:
    detection = host.detect((HOST / name).read_text())
    assert detection is not None and detection.kind == kind


def test_not_fooled_by_other_outputs() -> None:
    neigh = "172.18.0.1 dev eth0 lladdr 02:42:ac:12:00:01 REACHABLE\n"
    members = "10.10.0.0/16\n10.200.1.10\n"
    link = "lo UNKNOWN 00:00:00:00:00:00 <LOOPBACK,UP,LOWER_UP>\n"
    for text in (neigh, members, link, '{"apiVersion": "v1", "kind": "Pod"}'):
        assert host.detect(text) is None, text
    for path in sorted((FIXTURES / "unsupported").glob("*.txt")):
        assert host.detect(path.read_text()) is None, path.name


@pytest.mark.parametrize(
    "other", ["ip-addr.txt", "ip-d-addr.txt", "ip-j-p-addr.json", "ip-j-d-addr.json"]
)
def test_json_and_text_addresses_agree(other: str) -> None:
    """The same namespace printed by ip -j addr and by ip [-d] addr / ip -j -p / ip -j -d."""
    reference = _addrs("ip-j-addr.json")
    assert _rows(_addrs(other), ADDR_KEY + LINK_KEY) == _rows(reference, ADDR_KEY + LINK_KEY)
    # the interface without addresses is still known, with family/local null
    flannel = reference.filter(pl.col("ifname") == "flannel.1")
    assert flannel.height == 1 and flannel["local"][0] is None


def test_oneline_and_brief_agree_with_json() -> None:
    reference = _addrs("ip-j-addr.json")
    with_addr = reference.filter(pl.col("local").is_not_null())
    assert _rows(_addrs("ip-o-addr.txt"), ADDR_KEY) == _rows(with_addr, ADDR_KEY)
    assert _rows(_addrs("ip-br-addr.txt"), BRIEF_KEY) == _rows(reference, BRIEF_KEY)


def test_link_kind_from_details_agrees() -> None:
    text = _addrs("ip-d-addr.txt").select("ifname", "link_kind").unique()
    json = _addrs("ip-j-d-addr.json").select("ifname", "link_kind").unique()
    assert text.sort("ifname").equals(json.sort("ifname"))
    kinds = dict(text.iter_rows())
    assert kinds == {
        "lo": None,
        "eth0": "veth",
        "kube-ipvs0": "ifb",
        "cni0": "bridge",
        "veth1a2b3c4d": "veth",
        "flannel.1": "vxlan",
    }


@pytest.mark.parametrize(
    "json_name,text_name",
    [
        ("ip-j-route.json", "ip-route.txt"),
        ("ip-j-6-route.json", "ip-6-route.txt"),
        ("ip-j-route-table-all.json", "ip-route-table-all.txt"),
    ],
)
def test_json_and_text_routes_agree(json_name: str, text_name: str) -> None:
    json_rows = _routes(json_name)
    assert json_rows.equals(_routes(text_name))


def test_route_values() -> None:
    routes = _routes("ip-route-table-all.txt")
    by_dst = {(r["table_name"], r["dst"], r["gateway"]): r for r in routes.iter_rows(named=True)}
    default4 = by_dst[("main", "0.0.0.0/0", "172.18.0.1")]
    assert (default4["family"], default4["protocol"], default4["scope"]) == (
        "inet",
        "boot",
        "global",
    )
    assert by_dst[("main", "::/0", "fc00:f853:ccd:e793::1")]["metric"] == 1024
    assert by_dst[("main", "192.168.50.0/24", "172.18.0.1")]["prefsrc"] == "172.18.0.5"
    assert by_dst[("100", "10.99.0.0/16", "172.18.0.1")]["route_type"] == "unicast"
    assert by_dst[("main", "10.10.250.0/24", None)]["route_type"] == "blackhole"
    vip = by_dst[("local", "10.200.1.216/32", None)]
    assert (vip["route_type"], vip["dev"], vip["scope"]) == ("local", "kube-ipvs0", "host")
    multipath = routes.filter(pl.col("dst") == "10.98.0.0/16")
    assert _rows(multipath, ["gateway", "weight"]) == [("172.18.0.2", 1), ("172.18.0.3", 2)]


def test_pretty_json_elements_are_located() -> None:
    """Each interface's rows carry the line of the `{` that starts its element."""
    text = (HOST / "ip-j-p-addr.json").read_text().splitlines()
    frame = _addrs("ip-j-p-addr.json")
    for ifname, line in frame.select("ifname", "source_line").unique().iter_rows():
        following = text[line - 1 : line + 3]
        assert text[line - 1].rstrip().endswith("{"), (ifname, line)
        assert any(f'"ifname": "{ifname}"' in t for t in following), (ifname, line)


def test_truncated_json_keeps_complete_elements() -> None:
    chunk = _parse("truncated-ip-j-p-addr.json")
    assert (chunk.records_parsed, chunk.records_rejected) == (3, 1)
    (error,) = chunk.errors
    assert error.reason.startswith("incomplete or invalid JSON")
    lines = (HOST / "truncated-ip-j-p-addr.json").read_text().splitlines()
    assert lines[error.line - 1].endswith("{") and '"ifname": "cni0"' in lines[error.line + 1]
    assert chunk.frames["raw_host_addrs"]["ifname"].unique().sort().to_list() == [
        "eth0",
        "kube-ipvs0",
        "lo",
    ]


def test_bad_json_elements_rejected_whole() -> None:
    chunk = _parse("bad-elements-ip-j-route.json")
    assert [(e.line, e.reason) for e in chunk.errors] == [
        (1, "line is not part of the JSON output"),
        (2, "route element has no 'dst'"),
        (2, "gateway '172.18.0.999' is not an IP address"),
    ]
    assert '"gateway":"172.18.0.999"' in chunk.errors[2].raw


def test_damaged_text_rejects_only_the_damaged_records() -> None:
    addr = _parse("damaged-ip-addr.txt")
    assert [e.line for e in addr.errors] == [41, 42, 70]
    assert addr.records_parsed == 11  # 13 address lines: one bad address, one cut off
    route = _parse("damaged-ip-route.txt")
    assert [e.reason for e in route.errors] == [
        NOT_A_LINE,
        NOT_A_LINE,
        "gateway '172.18.0' is not an IP address",
        NOT_A_LINE,  # a nexthop line after a single-path route
    ]
    assert route.frames["raw_host_routes"].height == 9


def test_seed_kube_ipvs0_text() -> None:
    chunk = _parse("seed-ip-d-c-addr-show-kube-ipvs0.txt")
    frame = chunk.frames["raw_host_addrs"]
    assert frame["local"].to_list() == ["10.200.1.1", "10.200.1.10"]
    assert set(frame["link_kind"]) == {"dummy"} and set(frame["oper_state"]) == {"DOWN"}
    assert chunk.errors[0].line == 1  # the shell prompt
    loop = _parse("seed-ip-br-c-addr-loop.txt")
    assert loop.frames["raw_host_addrs"]["local"].value_counts().height == 2
    assert [e.line for e in loop.errors] == [1, 2, 5, 8, 11]


def test_colour_codes_and_default_family() -> None:
    text = (
        "\x1b[36mkube-ipvs0      \x1b[0m \x1b[31mDOWN           \x1b[0m "
        "\x1b[35m10.200.1.1\x1b[0m/32 \n"
        "default dev wg0 scope link\n"
        "default dev eth0 metric 1024 pref medium\n"
    )
    chunk = host.parse(text, "ip-addr-brief")
    chunk.check_counts()
    assert chunk.frames["raw_host_addrs"]["local"].to_list() == ["10.200.1.1"]
    assert chunk.frames["raw_host_routes"]["dst"].to_list() == ["0.0.0.0/0", "::/0"]

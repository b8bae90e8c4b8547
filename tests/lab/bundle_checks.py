"""Checks that a lab bundle is complete and agrees with itself: used on the committed bundles
(no root needed) and on bundles generated fresh by the root tests.

Every ground-truth request is looked up in the DNAT node's own conntrack table, conntrack
events and packet capture, so the ground truth is checked against the kernel's view, not
against the generator's intentions.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import struct
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dpkt
import lab_kproxy_ipvs
import lab_truth
from lab_model import PLANS, Cluster, build_cluster

from tests.lab.nft_checks import check_nft_rules

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL2 = 276
MAX_BUNDLE_BYTES = 5 * 1024 * 1024
STATE_FILES = [
    "conntrack.txt",
    "conntrack-extended.txt",
    "conntrack-events.txt",
    "iptables-save.txt",
    "ip-addr.json",
    "ip-route.json",
]
CLUSTER_FILES = [
    "nodes.json",
    "pods.json",
    "services.json",
    "endpointslices.json",
    "configmap-kube-proxy.json",
]
_TUPLE = re.compile(r"src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")

Tuple4 = tuple[str, int, str, int]


@dataclass(frozen=True)
class CtEntry:
    proto: str
    orig: Tuple4
    reply: Tuple4


def read_rows(bundle: Path) -> list[dict[str, str]]:
    with (bundle / "ground_truth.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def conntrack_entries(text: str) -> list[CtEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.split()
        found = _TUPLE.findall(line)
        if fields and fields[0] == "ipv4":
            fields = fields[2:]
        if len(found) >= 2 and fields and fields[0] in ("tcp", "udp"):
            o, r = found[0], found[1]
            entries.append(
                CtEntry(
                    fields[0],
                    (o[0], int(o[2]), o[1], int(o[3])),
                    (r[0], int(r[2]), r[1], int(r[3])),
                )
            )
    return entries


def pcap_linktype(path: Path) -> int:
    head = path.read_bytes()[:24]
    magic = head[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    return int(struct.unpack(endian + "I", head[20:24])[0]) & 0x0FFFFFFF


def pcap_tuples(path: Path) -> set[tuple[str, Tuple4]]:
    """(proto, src, sport, dst, dport) of every TCP SYN and every UDP datagram in a pcap."""
    found: set[tuple[str, Tuple4]] = set()
    with path.open("rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        sll2 = reader.datalink() == LINKTYPE_LINUX_SLL2
        for _ts, buf in reader:
            frame = dpkt.sll2.SLL2(buf) if sll2 else dpkt.ethernet.Ethernet(buf)
            ip = frame.data
            if not isinstance(ip, dpkt.ip.IP):
                continue
            src, dst = dpkt.utils.inet_to_str(ip.src), dpkt.utils.inet_to_str(ip.dst)
            l4 = ip.data
            if isinstance(l4, dpkt.tcp.TCP) and l4.flags & dpkt.tcp.TH_SYN:
                if not l4.flags & dpkt.tcp.TH_ACK:
                    found.add(("tcp", (src, l4.sport, dst, l4.dport)))
            elif isinstance(l4, dpkt.udp.UDP):
                found.add(("udp", (src, l4.sport, dst, l4.dport)))
    return found


def node_files(cluster: Cluster, node: str, ipvs_like: bool, nft: bool = False) -> list[str]:
    pods = cluster.pods_on(node)
    files = STATE_FILES + ["ipset.txt", "eth0.pcap", "any.pcap"] + [f"{p.veth}.pcap" for p in pods]
    files += ["nft-ruleset.txt", "nft-ruleset.json"] if nft else []
    return files + (["ipvsadm-Ln.txt"] if ipvs_like else [])


def check_bundle(
    bundle: Path,
    ipvs_like: bool,
    requests_per_scenario: int,
    *,
    tshark: bool = False,
    plan: str = "kind",
    nft_shape: str | None = None,
) -> None:
    """Raise AssertionError with a precise message on the first thing that is wrong.

    ``tshark=True`` also has every pcap read by ``tshark -r`` (slow: about a second each).
    ``plan`` is the addressing plan the bundle was made with (make_bundle.py --plan);
    ``nft_shape`` is set for an nftables-mode bundle (make_bundle.py --nft-shape).
    """
    cluster = build_cluster(PLANS[plan])
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert size < MAX_BUNDLE_BYTES, f"{bundle} is {size} bytes"
    readme = (bundle / "README.md").read_text()
    assert "make_bundle.py" in readme and ("SYNTHETIC" in readme) == ipvs_like
    assert f"Addressing plan `{plan}`" in readme or (plan == "kind" and "seed write-up" in readme)
    for name in CLUSTER_FILES:
        obj = json.loads((bundle / "cluster" / name).read_text())
        assert obj.get("kind") in ("List", "ConfigMap"), name
    mode = json.loads((bundle / "cluster" / "configmap-kube-proxy.json").read_text())
    want_mode = "nftables" if nft_shape else ("ipvs" if ipvs_like else "iptables")
    assert f"mode: {want_mode}" in mode["data"]["config.conf"]
    pcaps = []
    for node in cluster.nodes:
        folder = bundle / node.name
        for name in node_files(cluster, node.name, ipvs_like, nft_shape is not None):
            path = folder / name
            empty_ok = name == "ipset.txt" and not ipvs_like
            assert path.is_file() and (empty_ok or path.stat().st_size > 0), f"{path} missing/empty"
            if name.endswith(".pcap"):
                want = LINKTYPE_LINUX_SLL2 if name == "any.pcap" else LINKTYPE_ETHERNET
                assert pcap_linktype(path) == want, f"{path}: link type"
                pcaps.append(path)
        if nft_shape is not None:
            check_nft_rules(cluster, folder, nft_shape)
        else:
            _check_rules(folder, ipvs_like)
    if tshark:
        _check_tshark_reads(pcaps)
    rows = read_rows(bundle)
    assert len(rows) == requests_per_scenario * len(cluster.scenarios), len(rows)
    _check_rows_against_kernel(cluster, bundle, rows)
    if ipvs_like:
        _check_ipvs(cluster, bundle, rows, requests_per_scenario)


def _tshark_read(path: Path) -> tuple[Path, int, str]:
    proc = subprocess.run(["tshark", "-r", str(path)], capture_output=True, text=True, check=False)
    return path, proc.returncode, proc.stderr


def _check_tshark_reads(pcaps: list[Path]) -> None:
    assert shutil.which("tshark"), "tshark is not installed"
    with ThreadPoolExecutor(max_workers=4) as pool:
        for path, code, err in pool.map(_tshark_read, pcaps):
            problems = [ln for ln in err.splitlines() if "Running as user" not in ln]
            assert code == 0 and not problems, f"tshark -r {path}: exit {code}: {problems}"


def _check_rules(folder: Path, ipvs_like: bool) -> None:
    save = (folder / "iptables-save.txt").read_text()
    for shape in (
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        "-j MASQUERADE --random-fully",
    ):
        assert shape in save, f"{folder.name}: {shape!r} not in iptables-save"
    if ipvs_like:
        assert "-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT" in save
        assert "-m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ" in save
        ipset = (folder / "ipset.txt").read_text()
        assert "10.200.1.216,tcp:9000" in ipset and "\n30001\n" in ipset
        assert "KUBE-SVC-" not in save
    else:
        assert "-m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-" in save
        assert "-m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-" in save
        assert "-j KUBE-EXT-" in save and "-A KUBE-NODEPORTS " in save


def _check_rows_against_kernel(cluster: Cluster, bundle: Path, rows: list[dict[str, str]]) -> None:
    tables = {
        n.name: conntrack_entries((bundle / n.name / "conntrack.txt").read_text())
        for n in cluster.nodes
    }
    extended = {
        n.name: conntrack_entries((bundle / n.name / "conntrack-extended.txt").read_text())
        for n in cluster.nodes
    }
    events = {n.name: (bundle / n.name / "conntrack-events.txt").read_text() for n in cluster.nodes}
    packets = {n.name: pcap_tuples(bundle / n.name / "any.pcap") for n in cluster.nodes}
    scenarios = {s.name: s for s in cluster.scenarios}
    for row in rows:
        rid, node = row["request_id"], row["dnat_node"]
        client = (row["client_ip"], int(row["client_port"]))
        dialed = (row["dialed_ip"], int(row["dialed_port"]))
        backend = (row["backend_ip"], int(row["backend_port"]))
        remote = (row["remote_ip"], int(row["remote_port"]))
        matches = [
            e for e in tables[node] if e.proto == row["proto"] and e.orig == (*client, *dialed)
        ]
        assert len(matches) == 1, f"request {rid}: {len(matches)} conntrack entries on {node}"
        entry = matches[0]
        # the reply tuple: from the backend, to the address the backend saw (RemoteAddr)
        assert entry.reply == (*backend, *remote), f"request {rid}: {entry} vs {row}"
        assert entry in extended[node], f"request {rid}: not in conntrack -o extended"
        new = f"src={client[0]} dst={dialed[0]} sport={client[1]} dport={dialed[1]}"
        assert re.search(r"\[NEW\] " + row["proto"] + r" .*" + re.escape(new), events[node]), rid
        proto = row["proto"]
        assert (proto, (*client, *dialed)) in packets[node], f"request {rid}: pre-NAT packet"
        assert (proto, (*remote, *backend)) in packets[node], f"request {rid}: post-NAT packet"
        expected = lab_truth.expected_snat_class(
            cluster, scenarios[row["scenario"]], row["backend_pod"]
        )
        assert row["snat_class"] == expected, f"request {rid}: {row['snat_class']} != {expected}"


def _check_ipvs(
    cluster: Cluster, bundle: Path, rows: list[dict[str, str]], per_scenario: int
) -> None:
    """Round robin is exact, and ipvsadm's counters agree with the requests."""
    for scenario in cluster.scenarios:
        got = Counter(r["backend_pod"] for r in rows if r["scenario"] == scenario.name)
        assert sorted(got.values()) == [per_scenario // 3] * 3, f"{scenario.name}: {got}"
    for node in cluster.nodes:
        listed = ipvsadm_totals((bundle / node.name / "ipvsadm-Ln.txt").read_text())
        for vs in lab_kproxy_ipvs.virtual_services(cluster, node):
            want = sum(
                1
                for r in rows
                if r["dnat_node"] == node.name
                and (r["dialed_ip"], int(r["dialed_port"]), r["proto"])
                == (vs.vip, vs.port, vs.proto)
            )
            assert listed.get(vs.label) == want, (
                f"{node.name} {vs.label}: {listed}, {want} requests"
            )


def ipvsadm_totals(text: str) -> dict[str, int]:
    """'TCP 10.200.1.216:9000' -> ActiveConn + InActConn over its destinations."""
    totals: dict[str, int] = {}
    current = None
    for line in text.splitlines()[3:]:
        fields = line.split()
        if line.startswith("  -> ") and current is not None:
            totals[current] += int(fields[4]) + int(fields[5])
        elif len(fields) >= 3:
            current = f"{fields[0]} {fields[1]}"
            totals[current] = 0
    return totals

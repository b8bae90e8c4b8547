"""raw_app_messages: HTTP/DNS messages pulled from packet payloads.

Oracles: the lab bundles' ground truth (every request seen with the dialed Host on the client's
node, every answer naming the backend and the SNAT source it saw on the backend's node) and
tshark's http/dns dissectors on the same files.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import dpkt
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest import pcap_app
from pipeline.ingest.pcap import read_capture

ROOT = Path(__file__).resolve().parents[2]
LAB_BUNDLES = ("lab-iptables", "lab-ipvs")
WIKIPEDIA = ROOT / "tests/fixtures/pcap/zeek/wikipedia.pcap"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def app_messages(path: Path) -> pl.DataFrame:
    return pl.concat([c.frames["raw_app_messages"] for c in read_capture(path)])


def bundle_messages(bundle: Path) -> pl.DataFrame:
    frames = [
        app_messages(pcap).with_columns(pl.lit(pcap.parent.name).alias("node"))
        for pcap in sorted(bundle.glob("*/*.pcap"))
    ]
    return pl.concat(frames)


@pytest.mark.parametrize("name", LAB_BUNDLES)
def test_lab_requests_and_whoami_answers_match_ground_truth(name: str) -> None:
    bundle = ROOT / "captures" / name
    pods = json.loads((bundle / "cluster/pods.json").read_text())["items"]
    node_of = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods}
    msgs = bundle_messages(bundle)
    requests = {
        (r["node"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["http_host"])
        for r in msgs.filter(pl.col("kind") == "http_request").iter_rows(named=True)
    }
    responses = {
        (r["node"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"]): r
        for r in msgs.filter(pl.col("kind") == "http_response").iter_rows(named=True)
    }
    with (bundle / "ground_truth.csv").open() as handle:
        truth = [row for row in csv.DictReader(handle) if row["proto"] == "tcp"]
    assert len(truth) >= 100
    for t in truth:
        dialed = f"{t['dialed_ip']}:{t['dialed_port']}"
        client_node = node_of.get(t["client"], t["dnat_node"])  # mypc: seen on the DNAT node
        key = (client_node, t["client_ip"], int(t["client_port"]), t["dialed_ip"])
        assert (*key, int(t["dialed_port"]), dialed) in requests, t["request_id"]
        backend_node = node_of[t["backend_pod"]]
        answer = responses[
            (
                backend_node,
                t["backend_ip"],
                int(t["backend_port"]),
                t["remote_ip"],
                int(t["remote_port"]),
            )
        ]
        assert answer["http_status"] == 200
        assert answer["whoami_hostname"] == t["backend_pod"]
        assert answer["whoami_ip"] == t["backend_ip"]
        assert answer["whoami_remote_addr"] == f"{t['remote_ip']}:{t['remote_port']}"
        assert answer["body_lines"].splitlines()[0] == f"Hostname: {t['backend_pod']}"


def test_lab_udp_whoami_names_the_backend() -> None:
    bundle = ROOT / "captures/lab-iptables"
    msgs = bundle_messages(bundle).filter(pl.col("kind") == "udp_whoami")
    with (bundle / "ground_truth.csv").open() as handle:
        truth = [row for row in csv.DictReader(handle) if row["proto"] == "udp"]
    seen = {(r["whoami_hostname"], r["whoami_remote_addr"]) for r in msgs.iter_rows(named=True)}
    for t in truth:
        assert (t["backend_pod"], f"{t['remote_ip']}:{t['remote_port']}") in seen


def _tshark(path: Path, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", str(path), "-Y", "dns || http", "-T", "fields", "-E", "separator=|"]
    for name in ("frame.number", *fields):
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def _dns_oracle_check(path: Path) -> int:
    """Compare every port-53 DNS message with tshark; returns how many were compared."""
    fields = ("dns.id", "dns.flags.response", "dns.qry.name", "dns.qry.type", "dns.flags.rcode")
    more = ("dns.count.answers", "dns.resp.name", "dns.resp.type", "dns.a", "dns.aaaa")
    srv = ("dns.srv.service", "dns.srv.proto", "dns.srv.name", "dns.srv.port", "dns.srv.target")
    ours = {r["frame_no"]: r for r in app_messages(path).iter_rows(named=True)}
    compared = 0
    for line in _tshark(path, *fields, *more, *srv):
        no, ident, resp, qname, qtype, rcode, count, names, types, a, aaaa = line[:11]
        if not ident:
            continue
        row = ours[int(no)]
        assert row["dns_id"] == int(ident, 16)
        assert row["kind"] == ("dns_response" if resp in ("1", "True") else "dns_query")
        assert row["dns_qname"] == qname
        assert row["dns_qtype"] == pcap_app.dns_type(int(qtype))
        if row["kind"] == "dns_query":
            compared += 1
            continue
        assert row["dns_rcode"] == pcap_app.DNS_RCODES[int(rcode)]
        n = int(count)
        answers = row["dns_answers"]
        # Wireshark splits an SRV owner name into service, proto and name (dns.srv.*)
        plain = iter(x for x in names.split(",") if x)
        srv_cols = [v.split(",") for v in line[11:16]]
        srv_owner = iter(".".join(p) for p in zip(*srv_cols[:3], strict=False))
        srv_value = iter(f"{p} {t}" for p, t in zip(*srv_cols[3:], strict=False))
        expected = []
        for t in [int(x) for x in types.split(",") if x][:n]:
            owner = next(srv_owner) if t == 33 else next(plain)
            expected.append((owner, pcap_app.dns_type(t)))
            if t == 33:
                match = [x for x in answers if x.startswith(f"{owner} SRV ")]
                assert match and match[0].endswith(next(srv_value))
        assert [tuple(x.split(" ")[:2]) for x in answers] == expected
        addrs = [x.split(" ")[2] for x in answers if x.split(" ")[1] in ("A", "AAAA")]
        oracle = [x for x in (a.split(",") + aaaa.split(",")) if x]
        assert addrs == oracle[: len(addrs)]
        compared += 1
    return compared


@needs_tshark
def test_dns_of_a_public_trace_equals_tshark() -> None:
    assert _dns_oracle_check(WIKIPEDIA) == 28


@needs_tshark
def test_http_of_a_public_trace_equals_tshark() -> None:
    fields = ("http.request.method", "http.host", "http.request.uri", "http.response.code")
    ours = {r["frame_no"]: r for r in app_messages(WIKIPEDIA).iter_rows(named=True)}
    compared = 0
    for no, method, host, uri, code in _tshark(WIKIPEDIA, *fields):
        if not (method or code):
            continue
        row = ours[int(no)]
        if method:
            assert (row["kind"], row["http_method"], row["http_host"], row["http_uri"]) == (
                "http_request",
                method,
                host,
                uri,
            )
        else:
            assert (row["kind"], row["http_status"]) == ("http_response", int(code))
        compared += 1
    assert compared >= 30
    assert sum(r["kind"].startswith("http") for r in ours.values()) == compared


def _udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    import socket

    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=17, data=udp)
    ip.len = len(ip)
    eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip)
    return bytes(eth)


def _tcp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    import socket

    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=1, ack=1, flags=0x18, data=payload)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=6, data=tcp)
    ip.len = len(ip)
    eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip)
    return bytes(eth)


def _dns(ident: int, qname: str, qtype: int, answers: list[dpkt.dns.DNS.RR]) -> bytes:
    msg = dpkt.dns.DNS(id=ident, qd=[dpkt.dns.DNS.Q(name=qname, type=qtype)], an=answers)
    if answers:
        msg.op = dpkt.dns.DNS_RA | dpkt.dns.DNS_AA
        msg.qr = dpkt.dns.DNS_R
    return bytes(msg)


def _rr(name: str, rtype: int, **fields: object) -> dpkt.dns.DNS.RR:
    rr = dpkt.dns.DNS.RR(name=name, type=rtype, ttl=30)
    for key, value in fields.items():
        setattr(rr, key, value)
    return rr


def write_kube_dns_pcap(path: Path) -> None:
    """A CoreDNS-like exchange (A, AAAA, SRV) plus an HTTP request cut mid-header."""
    import socket

    kube_dns = "kube-dns.kube-system.svc.cluster.local"
    srv = "_dns._udp.kube-dns.kube-system.svc.cluster.local"
    a = _rr(kube_dns, dpkt.dns.DNS_A, ip=socket.inet_aton("10.200.1.10"))
    aaaa = _rr(kube_dns, dpkt.dns.DNS_AAAA, ip6=socket.inet_pton(socket.AF_INET6, "fd00::a"))
    srv_rr = _rr(srv, dpkt.dns.DNS_SRV, priority=0, weight=100, port=53, srvname=kube_dns)
    pod, dns_ip = "10.10.0.5", "10.200.1.10"
    frames = [
        _udp_frame(pod, dns_ip, 40001, 53, _dns(0x1234, kube_dns, dpkt.dns.DNS_A, [])),
        _udp_frame(dns_ip, pod, 53, 40001, _dns(0x1234, kube_dns, dpkt.dns.DNS_A, [a])),
        _udp_frame(pod, dns_ip, 40002, 53, _dns(0x2345, kube_dns, dpkt.dns.DNS_AAAA, [])),
        _udp_frame(dns_ip, pod, 53, 40002, _dns(0x2345, kube_dns, dpkt.dns.DNS_AAAA, [aaaa])),
        _udp_frame(pod, dns_ip, 40003, 53, _dns(0x3456, srv, dpkt.dns.DNS_SRV, [])),
        _udp_frame(dns_ip, pod, 53, 40003, _dns(0x3456, srv, dpkt.dns.DNS_SRV, [srv_rr])),
        _tcp_frame(pod, dns_ip, 40004, 80, b"GET /x HTTP/1.1\r\nHost: 10.200.1.216:9000\r\nUser-"),
        _tcp_frame(pod, dns_ip, 40005, 80, b"POST /y HTTP/1.1\r\nHost: h\r\n\r\nabc"),
    ]
    with path.open("wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for i, frame in enumerate(frames):
            writer.writepkt(frame, ts=1_700_000_000 + i / 10)


@needs_tshark
def test_kube_dns_messages_equal_tshark(tmp_path: Path) -> None:
    path = tmp_path / "dns.pcap"
    write_kube_dns_pcap(path)
    assert _dns_oracle_check(path) == 6
    rows = {r["frame_no"]: r for r in app_messages(path).iter_rows(named=True)}
    assert rows[2]["dns_answers"] == ["kube-dns.kube-system.svc.cluster.local A 10.200.1.10"]
    assert rows[4]["dns_answers"] == ["kube-dns.kube-system.svc.cluster.local AAAA fd00::a"]
    assert rows[6]["dns_answers"] == [
        "_dns._udp.kube-dns.kube-system.svc.cluster.local SRV "
        "0 100 53 kube-dns.kube-system.svc.cluster.local"
    ]
    assert rows[2]["dns_rcode"] == "NOERROR"
    assert rows[1]["dns_rcode"] is None
    cut = rows[7]  # the header ends mid-line: the line parser keeps what is there
    assert (cut["kind"], cut["http_method"], cut["http_uri"]) == ("http_request", "GET", "/x")
    assert cut["http_host"] == "10.200.1.216:9000"
    assert cut["http_user_agent"] is None
    post = rows[8]  # a whole head with a body: dpkt parses it
    assert (post["http_method"], post["http_host"]) == ("POST", "h")


def test_app_messages_do_not_change_record_counts(tmp_path: Path) -> None:
    path = tmp_path / "dns.pcap"
    write_kube_dns_pcap(path)
    chunks = list(read_capture(path))
    assert sum(c.records_read for c in chunks) == 8
    assert sum(c.records_parsed for c in chunks) == 8
    assert sum(c.frames["raw_app_messages"].height for c in chunks) == 8


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_payload_parsers_never_raise(data: bytes) -> None:
    pcap_app.parse_http_lines(data)
    pcap_app.parse_http(data)
    pcap_app.parse_http(b"HTTP/1.1 " + data)
    pcap_app.parse_dns(data)
    pcap_app.parse_payload(b"Hostname: " + data, "udp", 5005, 40000)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["GET ", "HTTP/1.1 ", "HTTP/", "PUT"]))
def test_line_parser_never_raises_on_http_like_text(text: str, start: str) -> None:
    row = pcap_app.parse_http_lines((start + text).encode("utf-8", "surrogatepass"))
    assert row is None or row["kind"] in ("http_request", "http_response")


def test_every_lab_message_is_tied_to_the_flow_of_its_own_tuple(analyzed) -> None:  # noqa: ANN001
    import duckdb

    db, _ = analyzed(ROOT / "captures" / "lab-iptables")
    con = duckdb.connect(str(db), read_only=True)
    try:
        total, tied, wrong = con.execute(
            """
            select
                count(*),
                count(m.uid),
                count(*) filter (
                    where m.uid is not null and not (
                        (m.src_ip, m.src_port, m.dst_ip, m.dst_port)
                            = (f.orig_h, f.orig_p, f.resp_h, f.resp_p)
                        or (m.src_ip, m.src_port, m.dst_ip, m.dst_port)
                            = (f.resp_h, f.resp_p, f.orig_h, f.orig_p)
                    )
                )
            from app_messages as m
            left join flows as f
                on f.uid = m.uid and f.source_file = m.source_file and f.node = m.node
            """
        ).fetchone()
    finally:
        con.close()
    assert total > 2000  # 944 requests + 944 responses + 240 UDP replies and their copies
    assert tied == total
    assert wrong == 0

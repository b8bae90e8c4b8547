"""ipvsadm ingestor: detection, field decoding and the rules for bad or damaged input."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pipeline.bundle import decode_text
from pipeline.ingest import ipvsadm
from pipeline.ingest.records import ParsedChunk
from pipeline.schemas import RAW_IPVS_BACKENDS, RAW_IPVS_SERVICES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ipvsadm"

LIST_HEADER = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)


def _parse(text: str, kind: str = "ipvsadm_list") -> ParsedChunk:
    chunk = ipvsadm.parse(text, kind)
    chunk.check_counts()
    return chunk


def _rows(chunk: ParsedChunk, table: str) -> list[dict[str, object]]:
    return chunk.frames[table].to_dicts()


def _fixture(name: str) -> str:
    return decode_text((FIXTURES / name).read_bytes())


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("seed-worker-Ln-1-before-svc.txt", "ipvsadm_list"),
        ("k8s-96879-grep-dualstack-nodeport.txt", "ipvsadm_list"),
        ("dpvs-386-stats-suffix-fragment.txt", "ipvsadm_list"),
        ("seed-control-plane-rate-t-svc.txt", "ipvsadm_list"),
        ("k8s-76664-udp-conns.txt", "ipvsadm_conn"),
        ("keepalived-98-empty.txt", "ipvsadm_conn"),
        ("alibaba-lvs-15-save-null.txt", "ipvsadm_save"),
        ("handwritten-proc-ip_vs.txt", "proc_ip_vs"),
        ("go-comment-ip_vs_conn.txt", "proc_ip_vs_conn"),
        ("procfs-ip_vs_stats.txt", "proc_ip_vs_stats"),
        ("handwritten-proc-ip_vs_stats_percpu.txt", "proc_ip_vs_stats"),
    ],
)
def test_detect_recognises_each_layout(name: str, kind: str) -> None:
    detection = ipvsadm.detect(_fixture(name))
    assert detection is not None and detection.kind == kind


def test_empty_proc_ip_vs_is_told_from_empty_listing_by_its_unpadded_title() -> None:
    proc = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
    )
    assert ipvsadm.detect(proc) == ipvsadm.Detection("proc_ip_vs", 4)
    listing = ipvsadm.detect(LIST_HEADER)
    assert listing is not None and listing.kind == "ipvsadm_list"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tcp      6 104 TIME_WAIT src=10.10.0.5 dst=10.10.2.2 sport=47602 dport=80\n",
        "-A KUBE-SERVICES -d 10.200.1.1/32 -p tcp -j KUBE-SVC-NPX46M4PTMTKRN6Y\n",
        "Name: KUBE-CLUSTER-IP\nType: hash:ip,port\n",
        "just some prose\n...\n",
    ],
)
def test_detect_ignores_other_tools(text: str) -> None:
    assert ipvsadm.detect(text) is None


def test_frames_have_the_schema_columns() -> None:
    chunk = _parse(_fixture("seed-worker-Ln-1-before-svc.txt"))
    assert chunk.frames["raw_ipvs_services"].schema == pl.Schema(RAW_IPVS_SERVICES.parser_schema())
    assert chunk.frames["raw_ipvs_backends"].schema == pl.Schema(RAW_IPVS_BACKENDS.parser_schema())


def test_backends_carry_their_service_key_and_line() -> None:
    chunk = _parse(_fixture("seed-worker-Ln-3-nodeport.txt"))
    backends = chunk.frames["raw_ipvs_backends"]
    by_service = backends.group_by("service_line", "vip", "vport").len().sort("service_line")
    assert by_service.rows() == [
        (4, "172.18.0.5", 30001, 3),
        (8, "10.10.2.1", 30001, 3),
        (12, "10.200.1.216", 9000, 3),
    ]
    assert set(backends["backend_ip"]) == {"10.10.1.2", "10.10.2.2", "10.10.3.2"}


def test_suffixes_expand_and_mark_the_row_inexact() -> None:
    text = "TCP  VIP:https        2515932  125426K        0   13034M        3G\n"
    chunk = _parse(text)
    (row,) = _rows(chunk, "raw_ipvs_services")
    assert (row["conns"], row["in_pkts"], row["in_bytes"], row["out_bytes"]) == (
        2515932,
        125426000,
        13034000000,
        3000000000,
    )
    assert row["is_exact"] is False
    assert (row["vip"], row["vport"], row["vport_name"]) == ("VIP", 443, "https")
    # without a column header --stats and --rate look alike: parsed, with a warning
    assert chunk.records_rejected == 0
    assert [e.is_rejection for e in chunk.errors] == [False]


def test_rate_header_maps_columns_to_rates() -> None:
    (row,) = _rows(_parse(_fixture("seed-control-plane-rate-t-svc.txt")), "raw_ipvs_services")
    assert (row["format"], row["cps"], row["in_pps"], row["out_bps"], row["conns"]) == (
        "rate",
        36,
        215,
        18815,
        None,
    )


def test_ipv6_in_brackets_is_normalised() -> None:
    text = LIST_HEADER + (
        "TCP  [2001:0DB8::0010]:443 rr\n"
        "  -> [2001:db8:0:0:0:0:0:11]:8443   Masq    0      0          0\n"
    )
    chunk = _parse(text)
    (service,) = _rows(chunk, "raw_ipvs_services")
    (backend,) = _rows(chunk, "raw_ipvs_backends")
    assert (service["vip"], service["family"]) == ("2001:db8::10", "inet6")
    assert (backend["backend_ip"], backend["backend_port"], backend["weight"]) == (
        "2001:db8::11",
        8443,
        0,
    )


def test_names_without_n_are_kept_with_well_known_ports() -> None:
    text = "TCP  www.example.com:http wlc\n  -> web1:my-svc          Route   20     0          0\n"
    chunk = _parse(text)
    (service,) = _rows(chunk, "raw_ipvs_services")
    (backend,) = _rows(chunk, "raw_ipvs_backends")
    assert (service["vip"], service["vport"], service["vport_name"], service["family"]) == (
        "www.example.com",
        80,
        "http",
        None,
    )
    assert (backend["backend_ip"], backend["backend_port"], backend["backend_port_name"]) == (
        "web1",
        None,
        "my-svc",
    )


def test_fwm_services_and_unknown_forward_methods() -> None:
    text = "FWM  7 IPv6 sh\n  -> [::1]:0                     FullNat 1      0          0\n"
    chunk = _parse(text)
    (service,) = _rows(chunk, "raw_ipvs_services")
    (backend,) = _rows(chunk, "raw_ipvs_backends")
    assert (service["proto"], service["fwmark"], service["family"], service["vip"]) == (
        "fwm",
        7,
        "inet6",
        None,
    )
    assert (backend["fwmark"], backend["forward"]) == (7, "FullNat")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("  -> 10.0.0.1:80 Masq 1 0 0\n", 1, "no service line before it"),
        ("TCP  10.0.0.1:80 rr\n...\n  -> 10.0.0.2:80 Masq 1 0 0\n", 2, "'...' elision"),
        ("TCP  10.0.0.1:80 rr\n  -> 10.0.0.2:80   \n", 2, "cut short"),
        ("TCP  10.0.0.1:80\n", 1, "no scheduler"),
        ("TCP  10.0.0.300:80 rr\n", 1, "not an IP address"),
        ("  -> 10.0.0.2:80 1 0 0 0\n", 1, "no service line"),
        ("Here is my output:\n", 1, "not an ipvsadm -L line"),
    ],
)
def test_bad_records_are_rejected_with_their_line(text: str, line: int, reason: str) -> None:
    chunk = _parse(text)
    first = next(e for e in chunk.errors if e.is_rejection)
    assert first.line == line
    assert reason in first.reason


def test_real_servers_after_an_elision_are_not_guessed_to_belong_to_the_service_before() -> None:
    text = "TCP  10.0.0.1:80 rr\n  -> 10.0.0.2:80 Masq 1 0 0\n<snip>\n  -> 10.0.0.3:80 Masq 1 0 0\n"
    chunk = _parse(text)
    assert _rows(chunk, "raw_ipvs_backends")[0]["backend_ip"] == "10.0.0.2"
    assert [(e.line, "unreadable line 3" in e.reason) for e in chunk.errors][-1] == (4, True)


def test_four_numbers_need_a_header_to_be_read() -> None:
    body = "TCP  10.0.0.1:80 rr\n  -> 10.0.0.2:80 1 2 3 4\n"
    assert _parse(body).records_rejected == 1
    pconn = "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn\n"
    (backend,) = _rows(_parse(pconn + body), "raw_ipvs_backends")
    assert (backend["weight"], backend["persist_conn"], backend["active_conn"]) == (1, 2, 3)
    assert backend["format"] == "persistent_conn"


def test_copy_paste_damage_loses_no_records() -> None:
    clean = _fixture("seed-loop-worker-Ln.txt")
    damaged_lines = []
    for i, line in enumerate(clean.splitlines()):
        line = line.replace("  ", "\t", 1) if i % 2 else line.replace(" ", "   ")
        damaged_lines += [line + "  " + ("^C" if i == 5 else ""), ""]
    damaged = "\r\n".join(damaged_lines)
    before, after = _parse(clean), _parse(damaged)
    assert (after.records_parsed, after.records_rejected) == (
        before.records_parsed,
        before.records_rejected,
    )
    for table in ("raw_ipvs_services", "raw_ipvs_backends"):
        drop = ["source_line", "service_line"] if table == "raw_ipvs_backends" else ["source_line"]
        assert after.frames[table].drop(drop).equals(before.frames[table].drop(drop))


def test_save_rules_and_a_server_without_its_service() -> None:
    text = (
        "-A -t 10.10.11.77:http -s rr -p 300 -M 255.255.255.0\n"
        "-a -t 10.10.11.77:http -r 10.10.11.66:http (null) -w 100\n"
        "-a -u 10.0.0.1:53 -r 10.0.0.2:53 -m -w 0 -x 10 -y 5\n"
        "-E -t 10.0.0.1:80 -s rr\n"
    )
    chunk = _parse(text, "ipvsadm_save")
    (service,) = _rows(chunk, "raw_ipvs_services")
    assert (service["persistent_s"], service["netmask"], service["flags"]) == (
        300,
        "255.255.255.0",
        "-p 300 -M 255.255.255.0",
    )
    first, second = _rows(chunk, "raw_ipvs_backends")
    assert (first["service_line"], first["forward"], first["backend_port"]) == (1, "(null)", 80)
    assert (second["service_line"], second["forward"], second["weight"]) == (None, "Masq", 0)
    assert (second["u_threshold"], second["l_threshold"]) == (10, 5)
    assert [(e.line, e.is_rejection) for e in chunk.errors] == [(3, False), (4, True)]


def test_proc_ip_vs_decodes_hex_and_netmask() -> None:
    chunk = _parse(_fixture("handwritten-proc-ip_vs.txt"), "proc_ip_vs")
    services = chunk.frames["raw_ipvs_services"]
    persistent = services.filter(pl.col("persistent_s").is_not_null())
    assert persistent.select("vip", "persistent_s", "netmask").rows() == [
        ("192.168.10.100", 300, "255.255.255.0"),
        ("2001:db8:10::100", 600, "64"),
    ]
    assert services.filter(pl.col("proto") == "fwm")["fwmark"].to_list() == [1]


def test_lnc_overflowing_columns_are_read_by_tokens() -> None:
    (first, _) = _rows(
        _parse(_fixture("k8s-76664-udp-conns.txt"), "ipvsadm_conn"), "raw_ipvs_connections"
    )
    assert (first["client_ip"], first["client_port"], first["vip"], first["backend_ip"]) == (
        "192.168.127.89",
        44117,
        "192.168.127.89",
        "192.168.129.116",
    )
    assert (first["expire_s"], first["state"], first["proto"]) == (264, "UDP", "udp")

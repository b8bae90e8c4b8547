"""The lab's pure parts, without root: kube-proxy chain names and rule shapes, the synthetic
ipvsadm text, the ground-truth parsing of whoami bodies and the expected SNAT classes."""

from __future__ import annotations

import lab_ipvsadm
import lab_kproxy_iptables
import lab_kproxy_ipvs
import lab_truth
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lab_kproxy_common import sep_chain, svc_chain
from lab_model import CLUSTER, Endpoint

WORKER = CLUSTER.node("myk8s-worker")


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        # values printed by real kube-proxy (issues and kube-proxy's own proxier_test.go)
        (svc_chain("default/kubernetes:https", "tcp"), "KUBE-SVC-NPX46M4PTMTKRN6Y"),
        (svc_chain("kube-system/kube-dns:dns", "udp"), "KUBE-SVC-TCOU7JCQXEZGVUNU"),
        (svc_chain("ns1/svc1:p80", "tcp"), "KUBE-SVC-XPGD46QRK7WJZT7O"),
        (sep_chain("ns4/svc4:p80", "tcp", "10.180.0.5:80"), "KUBE-SEP-C6EBXVWJJZMIWKLZ"),
    ],
)
def test_chain_names_are_hashed_like_kube_proxy(chain: str, expected: str) -> None:
    assert chain == expected


def test_iptables_mode_rules_have_the_kube_proxy_shapes() -> None:
    text = lab_kproxy_iptables.restore_text(CLUSTER, WORKER)
    svc = svc_chain("default/svc-clusterip:svc-webport", "tcp")
    assert "-m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-" in text
    assert (
        f'-A {svc} -m comment --comment "default/svc-clusterip:svc-webport -> 10.10.3.2:80" -j'
        in text
    )
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000" in text
    assert "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000" in text
    assert "-j MASQUERADE --random-fully" in text
    assert "--dport 30001 -j KUBE-EXT-" in text
    # the NodePort jump must be the last rule of KUBE-SERVICES
    services = [ln for ln in text.splitlines() if ln.startswith("-A KUBE-SERVICES ")]
    assert services[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")


def test_ipvs_mode_rules_match_the_seed() -> None:
    text = lab_kproxy_ipvs.restore_text(CLUSTER, WORKER)
    chain = [ln for ln in text.splitlines() if ln.startswith("-A KUBE-SERVICES ")]
    assert chain[0] == "-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN"
    assert chain[-1] == "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT"
    assert "KUBE-LOOP-BACK dst,dst,src -j MASQUERADE" in text  # webpod1 is local to the worker
    control_plane = lab_kproxy_ipvs.restore_text(CLUSTER, CLUSTER.node("myk8s-control-plane"))
    assert "KUBE-LOOP-BACK" not in control_plane  # empty set, so kube-proxy writes no rule


def test_ipvs_emulation_is_an_nth_cascade_per_virtual_service() -> None:
    text = lab_kproxy_ipvs.emulation_restore_text(CLUSTER, WORKER)
    labels = [vs.label for vs in lab_kproxy_ipvs.virtual_services(CLUSTER, WORKER)]
    assert "TCP 10.10.2.1:30001" in labels and "TCP 172.18.0.5:30001" in labels
    assert text.count("--mode nth --every 3 --packet 0") == 4  # 4 services with 3 backends
    assert text.count("--mode nth --every 2 --packet 0") == 4


def test_ipvsadm_text_has_the_exact_format_and_seed_order() -> None:
    dests = tuple(Endpoint(ip, 80, None, None) for ip in ("10.10.3.2", "10.10.1.2"))
    services = [
        lab_kproxy_ipvs.VirtualService("tcp", "10.200.1.216", 9000, dests),
        lab_kproxy_ipvs.VirtualService("udp", "10.200.1.100", 5005, dests[:1]),
        lab_kproxy_ipvs.VirtualService("tcp", "172.18.0.5", 30001, dests),
    ]
    conntrack = (
        "tcp      6 118 TIME_WAIT src=172.18.0.6 dst=172.18.0.5 sport=4242 dport=30001 "
        "src=10.10.1.2 dst=172.18.0.5 sport=80 dport=29038 [ASSURED] mark=0 use=1\n"
        "tcp      6 431999 ESTABLISHED src=172.18.0.6 dst=172.18.0.5 sport=4243 dport=30001 "
        "src=10.10.1.2 dst=172.18.0.5 sport=80 dport=29039 [ASSURED] mark=0 use=1\n"
    )
    expected = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  172.18.0.5:30001 rr\n"
        "  -> 10.10.1.2:80                 Masq    1      1          1         \n"
        "  -> 10.10.3.2:80                 Masq    1      0          0         \n"
        "TCP  10.200.1.216:9000 rr\n"
        "  -> 10.10.1.2:80                 Masq    1      0          0         \n"
        "  -> 10.10.3.2:80                 Masq    1      0          0         \n"
        "UDP  10.200.1.100:5005 rr\n"
        "  -> 10.10.3.2:80                 Masq    1      0          0         \n"
    )
    assert lab_ipvsadm.render(services, conntrack) == expected


SEED_BODY = (
    "Hostname: webpod1\nIP: 127.0.0.1\nIP: ::1\nIP: 10.10.2.2\nIP: fe80::9cd3:48ff:fe0e:8a9\n"
    "RemoteAddr: 10.10.2.1:14677\nGET / HTTP/1.1\r\nHost: 172.18.0.5:30001\r\n"
    "User-Agent: curl/8.7.1\r\nAccept: */*\r\n\r\n"
)


def test_whoami_body_from_the_seed_parses() -> None:
    who = lab_truth.parse_whoami(SEED_BODY)
    assert who is not None
    assert (who.hostname, who.pod_ipv4, who.remote_ip, who.remote_port) == (
        "webpod1",
        "10.10.2.2",
        "10.10.2.1",
        14677,
    )
    assert lab_truth.parse_whoami("Hostname: x\nIP: 1.2.3.4\n") is None  # no RemoteAddr


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_whoami_parser_never_raises(text: str) -> None:
    who = lab_truth.parse_whoami(text)
    assert who is None or isinstance(who.remote_port, int)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(SEED_BODY)), st.integers(0, 20))
def test_whoami_parser_survives_cut_bodies(cut: int, extra: int) -> None:
    who = lab_truth.parse_whoami(SEED_BODY[:cut] + SEED_BODY[cut : cut + extra])
    assert who is None or who.hostname


@pytest.mark.parametrize(
    ("scenario", "backend", "expected"),
    [
        ("pod-clusterip", "webpod1", "none"),
        ("external-nodeport", "webpod1", "pod_gateway"),  # backend local to the DNAT node
        ("external-nodeport", "webpod2", "node_ip"),
        ("pod-nodeport-gateway", "webpod1", "pod_gateway"),
        ("pod-nodeport-gateway", "webpod3", "node_ip"),
        ("hairpin-clusterip", "webpod1", "pod_gateway"),  # a backend reaching itself
        ("hairpin-clusterip", "webpod2", "none"),
        ("pod-clusterip-udp", "webpod3", "none"),
    ],
)
def test_expected_snat_class(scenario: str, backend: str, expected: str) -> None:
    sc = next(s for s in CLUSTER.scenarios if s.name == scenario)
    assert lab_truth.expected_snat_class(CLUSTER, sc, backend) == expected

"""conntrack ingestor: field mapping, record grouping, summary checks, cross-format agreement.

The expected-file fixtures (tests/test_ingest_fixtures.py) pin every column of every sample; these
tests state the rules behind them one by one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.ingest import conntrack
from pipeline.ingest.records import ParsedChunk

FIXTURES = Path(__file__).parents[1] / "fixtures" / "conntrack"
ENTRIES = "raw_conntrack_entries"
STATS = "raw_conntrack_stats"
TUPLE = (
    "l3proto",
    "proto",
    "orig_src",
    "orig_dst",
    "orig_sport",
    "orig_dport",
    "reply_src",
    "reply_dst",
    "reply_sport",
    "reply_dport",
    "orig_gre_key",
    "reply_gre_key",
)


def parse(text: str) -> ParsedChunk:
    detection = conntrack.detect(text)
    assert detection is not None
    chunk = conntrack.parse(text, detection.kind)
    chunk.check_counts()
    return chunk


def rows(text: str) -> list[dict[str, Any]]:
    return parse(text).frames[ENTRIES].to_dicts()


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_each_kind_is_detected_by_content() -> None:
    cases = {
        "netlink-876-close-wait.txt": "conntrack",
        "lab-proc-nf-conntrack.txt": "conntrack",
        "netfilter-devel-hw-offload-wrapped.txt": "conntrack",
        "weave-scope-E-o-id.txt": "conntrack-events",
        "lab-E-timestamp.txt": "conntrack-events",
        "tsuru-prometheus-conntrack-xml.txt": "conntrack-xml",
        "lab-E-xml-timestamp.txt": "conntrack-xml",
        "google-nftables-138-S.txt": "conntrack-stats",
        "lab-proc-stat-nf-conntrack.txt": "conntrack-stats",
    }
    for name, kind in cases.items():
        detection = conntrack.detect(fixture(name))
        assert detection is not None and detection.kind == kind, name


@pytest.mark.parametrize(
    "text",
    [
        "",
        "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n"
        "TCP  10.200.1.216:9000 rr\n  -> 10.10.1.2:80            Masq    1      0          0\n",
        "*nat\n:PREROUTING ACCEPT [0:0]\n-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -j KUBE-SVC-X\n",
        "20:58:59.432284 IP 10.10.2.1.17574 > 10.10.2.2.80: Flags [S], seq 1, length 0\n",
        "the tcp connection was reset\n",
    ],
)
def test_other_outputs_are_not_claimed(text: str) -> None:
    assert conntrack.detect(text) is None


def test_first_group_is_original_and_counters_follow_their_group() -> None:
    (row,) = rows(
        "udp      17 3 src=10.128.0.103 dst=169.254.169.254 sport=37351 dport=53 packets=1"
        " bytes=80 src=169.254.169.254 dst=10.128.0.103 sport=53 dport=37351 packets=2"
        " bytes=176 mark=0 delta-time=27 use=1\n"
    )
    assert (row["orig_src"], row["orig_sport"], row["orig_packets"], row["orig_bytes"]) == (
        "10.128.0.103",
        37351,
        1,
        80,
    )
    assert (row["reply_src"], row["reply_sport"], row["reply_packets"], row["reply_bytes"]) == (
        "169.254.169.254",
        53,
        2,
        176,
    )
    assert row["delta_time_s"] == 27 and row["timeout_s"] == 3 and row["state"] is None


def test_icmp_id_follows_code_and_conntrack_id_comes_last() -> None:
    (row,) = rows(
        "[NEW] ipv4 2 icmp 1 30 src=10.9.0.1 dst=10.9.0.2 type=8 code=0 id=5 [UNREPLIED]"
        " src=10.9.0.2 dst=10.9.0.1 type=0 code=0 id=5 mark=0 id=2247478378\n"
    )
    assert (row["orig_icmp_type"], row["orig_icmp_code"], row["orig_icmp_id"]) == (8, 0, 5)
    assert (row["reply_icmp_type"], row["reply_icmp_id"]) == (0, 5)
    assert row["ct_id"] == 2247478378


def test_zones_sit_with_their_tuple_and_the_entry() -> None:
    (row,) = rows(
        "tcp 6 49 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=3 dport=4 zone-orig=3 [UNREPLIED]"
        " src=10.0.0.2 dst=10.0.0.1 sport=4 dport=3 zone-reply=4 mark=0 zone=9 use=1\n"
    )
    assert (row["orig_zone"], row["reply_zone"], row["zone"]) == (3, 4, 9)


def test_unknown_protocol_number_is_kept_as_text() -> None:
    (row,) = rows(
        "unknown  99 92 src=10.0.0.1 dst=10.0.0.5 [UNREPLIED] src=10.0.0.5 dst=10.0.0.1"
        " mark=0 use=1\n"
    )
    assert (row["proto"], row["proto_num"], row["flags"]) == ("99", 99, ["UNREPLIED"])


def test_proc_file_is_told_from_extended_and_ipv6_is_normalised() -> None:
    by_line = {r["source_line"]: r for r in rows(fixture("lab-proc-nf-conntrack.txt"))}
    assert {r["format"] for r in by_line.values()} == {"proc"}
    assert by_line[9]["orig_src"] == "2001:db8::10"
    assert by_line[6]["extra"] == "timeout=0, stream_timeout=0"
    extended = rows(fixture("lab-L-extended-id-ktimestamp.txt"))
    assert {r["format"] for r in extended} == {"extended"}


def test_hard_wrapped_records_are_joined_at_their_first_line() -> None:
    entries = rows(fixture("netfilter-devel-hw-offload-wrapped.txt"))
    assert [(r["source_line"], r["flags"], r["timeout_s"]) for r in entries] == [
        (1, ["HW_OFFLOAD"], None),
        (4, ["HW_OFFLOAD"], None),
    ]
    (quoted,) = rows(fixture("patch-commitmsg-hw-offload-backslash.txt"))
    assert (quoted["orig_sport"], quoted["reply_dport"], quoted["use"]) == (56394, 56394, 3)


def test_a_continuation_without_its_first_line_is_rejected() -> None:
    text = "src=1.1.1.16 dst=1.1.1.17 sport=5001 dport=56408 [HW_OFFLOAD] mark=0\n"
    assert conntrack.detect(text) is None
    chunk = conntrack.parse(text, "conntrack")
    chunk.check_counts()
    assert chunk.records_read == 1 and chunk.records_rejected == 1
    assert "without its first line" in chunk.errors[0].reason


def test_anonymised_address_is_rejected_naming_the_field() -> None:
    chunk = parse(fixture("google-nftables-138-E-anonymized.txt"))
    (error,) = chunk.errors
    assert error.is_rejection and error.line == 1 and "orig src=" in error.reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("tcp 6 83 TIME_WAIT src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 src=2.2.2.2", "reply tuple"),
        ("tcp 6 83 TIME_WAIT src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2", "no reply tuple"),
        (
            "tcp 6 83 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 src=2.2.2.2 dst=1.1.1.1 sport=2"
            " dport=1",
            "use=",
        ),
        (
            "tcp 17 30 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 src=2.2.2.2 dst=1.1.1.1 sport=2 "
            "dport=1 use=1",
            "does not match",
        ),
    ],
)
def test_cut_or_inconsistent_records_are_rejected(line: str, reason: str) -> None:
    chunk = parse(line + "\n")
    assert chunk.records_rejected == 1 and reason in chunk.errors[0].reason


def test_summary_after_the_records_is_checked() -> None:
    entry = fixture("netlink-876-close-wait.txt")
    ok = parse(entry + "conntrack v1.4.6 (conntrack-tools): 3 flow entries have been shown.\n")
    assert ok.errors == []
    short = parse(entry + "conntrack v1.4.6 (conntrack-tools): 4 flow entries have been shown.\n")
    (warning,) = short.errors
    assert not warning.is_rejection and warning.line == 4 and "says 4" in warning.reason
    assert short.records_rejected == 0


def test_summary_printed_first_counts_the_records_after_it() -> None:
    chunk = parse(fixture("lab-L-default.txt"))
    assert chunk.errors == [] and chunk.records_parsed == 10


def test_table_and_counters_in_one_file_fill_both_tables() -> None:
    chunk = parse(fixture("netlink-876-close-wait.txt") + fixture("lab-S.txt"))
    assert chunk.frames[ENTRIES].height == 3
    assert chunk.frames[STATS].filter(pl.col("counter") == "insert")["value"].to_list() == [11, 10]


def test_proc_stat_rows_are_hex_decoded_per_cpu() -> None:
    stats = parse(fixture("lab-proc-stat-nf-conntrack.txt")).frames[STATS]
    inserts = stats.filter(pl.col("counter") == "insert").select("cpu", "value").rows()
    assert inserts == [(0, 11), (1, 10)]


def test_xml_sctp_state_printed_through_the_tcp_table_is_mapped_back() -> None:
    xml = {r["proto"]: r for r in rows(fixture("lab-L-xml-id-ktimestamp.txt"))}
    assert "<state>FIN_WAIT</state>" in fixture("lab-L-xml-id-ktimestamp.txt")
    assert xml["sctp"]["state"] == "ESTABLISHED"


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in TUPLE)


def _view(entries: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {_key(r): (r["state"], tuple(r["flags"]), r["mark"]) for r in entries}


def test_the_same_table_agrees_across_print_formats() -> None:
    """lab-* were dumped from one table: -L, -o extended,id,ktimestamp, -o xml and /proc."""
    default = _view(rows(fixture("lab-L-default.txt")))
    assert len(default) == 10
    for name in (
        "lab-L-extended-id-ktimestamp.txt",
        "lab-L-xml-id-ktimestamp.txt",
        "lab-proc-nf-conntrack.txt",
    ):
        assert _view(rows(fixture(name))) == default, name
    ids_text = {_key(r): r["ct_id"] for r in rows(fixture("lab-L-extended-id-ktimestamp.txt"))}
    ids_xml = {_key(r): r["ct_id"] for r in rows(fixture("lab-L-xml-id-ktimestamp.txt"))}
    assert ids_text == ids_xml


def test_events_agree_between_text_and_xml() -> None:
    text = rows(fixture("lab-E-extended-id.txt"))
    xml = rows(fixture("lab-E-xml-timestamp.txt"))
    pick = ("event", "proto", "orig_src", "orig_sport", "reply_dport", "state", "mark", "ct_id")
    assert [tuple(r[c] for c in pick) for r in text] == [tuple(r[c] for c in pick) for r in xml]
    assert [r["userspace_portid"] for r in text] == [r["userspace_portid"] for r in xml]


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="cannot parse kind"):
        conntrack.parse("", "ipvsadm")

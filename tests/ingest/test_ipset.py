"""ipset ingestor: list/save agreement, member splitting by type, count warnings, damage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.bundle import decode_text
from pipeline.ingest import ipset
from pipeline.ingest.records import ParsedChunk

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ipset"
SETS = "raw_ipset_sets"
MEMBERS = "raw_ipset_members"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse(name: str) -> ParsedChunk:
    text = decode_text((FIXTURES / name).read_bytes())
    detection = ipset.detect(text)
    assert detection is not None
    chunk = ipset.parse(text, detection.kind)
    chunk.check_counts()
    return chunk


def _members(chunk: ParsedChunk) -> set[tuple[Any, ...]]:
    cols = ("set_name", "member", "ip", "ip2", "proto", "port")
    return {tuple(r[c] for c in cols) for r in chunk.frames[MEMBERS].to_dicts()}


def test_list_and_save_of_the_same_sets_agree() -> None:
    listed, saved = _parse("netns-ipset-list.txt"), _parse("netns-ipset-save.txt")
    assert _members(listed) == _members(saved)
    assert len(_members(listed)) == 16

    def sets(chunk: ParsedChunk) -> set[tuple[Any, ...]]:
        cols = ("set_name", "set_type", "header", "family", "members_listed")
        return {tuple(r[c] for c in cols) for r in chunk.frames[SETS].to_dicts()}

    assert sets(listed) == sets(saved)


def test_member_split_by_set_type() -> None:
    rows = {r["member"]: r for r in _parse("netns-ipset-list.txt").frames[MEMBERS].to_dicts()}
    dns = rows["10.200.1.10,udp:53"]
    assert (dns["ip"], dns["proto"], dns["port"]) == ("10.200.1.10", "udp", 53)
    assert dns["extra"] == 'comment "kube-system/kube-dns:dns"'
    assert rows["30500"]["port"] == 30500 and rows["30500"]["proto"] is None
    loop = rows["10.10.1.2,tcp:80,10.10.1.2"]
    assert (loop["ip"], loop["ip2"], loop["port"]) == ("10.10.1.2", "10.10.1.2", 80)
    assert rows["192.0.2.10,tcp:8080,198.51.100.0/24"]["ip2"] == "198.51.100.0/24"
    assert rows["192.0.2.20,tcp:80"]["extra"].startswith("timeout ")
    assert rows["198.51.100.7"]["extra"] == 'nomatch comment "single host"'
    assert rows["fd00:10:96::a,udp:53"]["ip"] == "fd00:10:96::a"


def test_entry_count_mismatch_is_a_warning_not_a_rejection() -> None:
    chunk = _parse("sealos-2108-cluster-ip-list.txt")
    assert chunk.records_rejected == 0
    [warning] = chunk.errors
    assert not warning.is_rejection and warning.line == 1
    assert "143" in warning.reason and "50 member(s)" in warning.reason
    row = chunk.frames[SETS].row(0, named=True)
    assert (row["number_of_entries"], row["members_listed"]) == (143, 50)


def test_header_only_listing_has_no_member_count_and_no_warning() -> None:
    for name in ("geoipsets-2-header-comment.txt", "netns-ipset-list-t.txt"):
        chunk = _parse(name)
        assert chunk.errors == []
        assert chunk.frames[SETS]["members_listed"].null_count() == chunk.frames[SETS].height
        assert chunk.frames[MEMBERS].height == 0


def test_seed_listings() -> None:
    cluster = _parse("seed-0439-ipset-list-KUBE-CLUSTER-IP.txt")
    assert cluster.errors == [] and cluster.frames[MEMBERS].height == 5
    node_port = _parse("seed-0439-ipset-list-KUBE-NODE-PORT-TCP.txt").frames[MEMBERS]
    assert node_port.select("port").to_series().to_list() == [30001]


@pytest.mark.parametrize(
    ("member", "set_type", "reason"),
    [
        ("10.200.1.1,tcp", "hash:ip,port", "not [proto:]port"),
        ("3000001", "bitmap:port", "not 0-65535"),
        ("10.10.1", "hash:net", "not an address"),
        ("10.0.0.1", "hash:ip,port", "has 1 part(s)"),
    ],
)
def test_bad_members_are_rejected(member: str, set_type: str, reason: str) -> None:
    text = f"create S {set_type}\nadd S {member}\n"
    chunk = ipset.parse(text, "ipset-save")
    chunk.check_counts()
    assert [(e.line, e.is_rejection) for e in chunk.errors] == [(2, True)]
    assert reason in chunk.errors[0].reason


def test_blank_lines_inside_members_do_not_end_the_set() -> None:
    text = "Name: S\nType: hash:ip\nNumber of entries: 2\nMembers:\n10.0.0.1\n\n10.0.0.2\n"
    chunk = ipset.parse(text, "ipset-list")
    assert chunk.errors == [] and chunk.frames[MEMBERS]["set_name"].to_list() == ["S", "S"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Name: S\nType: hash:ip\nMembers:\n10.0.0.1\n", "ipset-list"),
        ("create S hash:ip family inet\nadd S 10.0.0.1\n", "ipset-save"),
        ("Name: kube-dns\nType: ClusterIP\nIP: 10.96.0.10\n", None),  # kubectl describe svc
        ("add S 10.0.0.1\n", None),
    ],
)
def test_detect(text: str, kind: str | None) -> None:
    detection = ipset.detect(text)
    assert (detection.kind if detection else None) == kind


@SETTINGS
@given(text=st.text(max_size=300), kind=st.sampled_from(ipset.KINDS))
def test_arbitrary_text_never_raises(text: str, kind: str) -> None:
    ipset.parse(text, kind).check_counts()


FIXTURE_LINES = [
    line
    for path in sorted(FIXTURES.glob("*.txt"))
    for line in decode_text(path.read_bytes()).splitlines()
]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.sampled_from(FIXTURE_LINES), min_size=1, max_size=15))
    out = []
    for line in lines:
        op = draw(st.sampled_from(["keep", "delete", "duplicate", "cut", "blank"]))
        at = draw(st.integers(0, max(len(line) - 1, 0)))
        if op == "delete":
            line = line[:at] + line[at + 1 :]
        elif op == "duplicate":
            line = line[:at] + line[at : at + 1] + line[at:]
        elif op == "cut":
            line = line[:at]
        elif op == "blank":
            out.append("")
        out.append(line)
    return "\n".join(out)


@SETTINGS
@given(text=_mutated(), kind=st.sampled_from(ipset.KINDS))
def test_mutated_fixture_lines_never_raise(text: str, kind: str) -> None:
    chunk = ipset.parse(text, kind)
    chunk.check_counts()
    rows = chunk.frames[SETS].height + chunk.frames[MEMBERS].height
    assert rows == chunk.records_parsed

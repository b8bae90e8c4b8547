"""iptables ingestor: exact tokenisation, save/-S agreement, table inference, damage handling."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.bundle import decode_text
from pipeline.ingest import iptables
from pipeline.ingest.records import ParsedChunk, clean_line

FIXTURES = Path(__file__).parent.parent / "fixtures" / "iptables"
RULES = "raw_iptables_rules"
CHAINS = "raw_iptables_chains"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse(name: str) -> ParsedChunk:
    text = decode_text((FIXTURES / name).read_bytes())
    detection = iptables.detect(text)
    assert detection is not None
    chunk = iptables.parse(text, detection.kind)
    chunk.check_counts()
    return chunk


def _rules(name: str, table: str | None = "nat") -> dict[tuple[str, int], dict[str, Any]]:
    rows = [r for r in _parse(name).frames[RULES].to_dicts() if r["table_name"] == table]
    return {(r["chain"], r["rule_num"]): r for r in rows}


SEMANTIC = ("jump_kind", "target", "target_args", "matches", "match_modules", "proto", "src",
            "dst", "in_iface", "out_iface", "comment", "table_name", "family")  # fmt: skip


def _semantic(rules: dict[tuple[str, int], dict[str, Any]]) -> dict[Any, tuple[Any, ...]]:
    return {key: tuple(str(row[c]) for c in SEMANTIC) for key, row in rules.items()}


@pytest.mark.parametrize(
    "other",
    ["netns-iptables-S-nat.txt", "netns-iptables-legacy-save-nat.txt", "netns-iptables-save-c.txt"],
)
def test_save_and_other_listings_of_the_same_ruleset_agree(other: str) -> None:
    """iptables-save vs iptables -S / legacy save / save -c of the same nat table: same rules."""
    saved = _rules("netns-iptables-save.txt")
    assert len(saved) == 39
    assert _semantic(_rules(other)) == _semantic(saved)


def test_save_and_s_declare_the_same_chains() -> None:
    def chains(name: str) -> set[tuple[str, str | None]]:
        frame = _parse(name).frames[CHAINS].filter(table_name="nat")
        return {(r["chain"], r["policy"]) for r in frame.to_dicts()}

    assert chains("netns-iptables-S-nat.txt") == chains("netns-iptables-save.txt")


def test_s_v_counters_match_save_c() -> None:
    """-S -v prints '-c p b' before the target; save -c prints '[p:b]' first: same numbers."""
    s_v = _rules("netns-iptables-S-v-filter.txt", table=None)
    save_c = _rules("netns-iptables-save-c.txt", table="filter")
    assert {k: (r["pkts"], r["bytes"]) for k, r in s_v.items()} == {
        k: (r["pkts"], r["bytes"]) for k, r in save_c.items()
    }
    assert s_v[("INPUT", 1)]["pkts"] == 11 and s_v[("INPUT", 1)]["bytes"] == 580


def _rebuild(row: dict[str, Any]) -> list[str]:
    words: list[str] = []
    for match in row["matches"]:
        words += (["!"] if match["negated"] else []) + [match["option"], *match["args"]]
    if row["jump_kind"]:
        words += [f"-{row['jump_kind']}", row["target"], *row["target_args"]]
    return words


def _words_without_counters(rule: str) -> list[str]:
    words = [w for w, _ in iptables.split_words(rule)]
    if "-c" in words:
        at = words.index("-c")
        del words[at : at + 3]
    return words


@pytest.mark.parametrize("case", sorted(p.name for p in FIXTURES.glob("*.txt")))
def test_tokenisation_is_lossless(case: str) -> None:
    """matches + target + target_args give back every word of the rule, in order."""
    for row in _parse(case).frames[RULES].to_dicts():
        assert _rebuild(row) == _words_without_counters(row["rule"]), row["rule"]


def test_kube_proxy_rule_details() -> None:
    rules = _rules("netns-iptables-save.txt")
    masq = rules[("KUBE-SERVICES", 2)]
    assert masq["src"] == "!10.10.0.0/16"
    assert masq["comment"] == "Kubernetes service cluster ip + port for masquerade purpose"
    assert masq["matches"][-1] == {
        "module": "set",
        "option": "--match-set",
        "negated": False,
        "args": ["KUBE-CLUSTER-IP", "dst,dst"],
    }
    assert rules[("KUBE-SVC-TCOU7JCQXEZGVUNU", 2)]["matches"][-1]["args"] == ["0.33333333349"]
    assert rules[("KUBE-SEP-A6KOMWLSVGQQGQSP", 2)]["target_args"] == [
        "--to-destination",
        "10.10.1.2:80",
    ]
    assert rules[("KUBE-POSTROUTING", 3)]["target_args"] == ["--random-fully"]
    assert rules[("KUBE-MARK-MASQ", 1)]["target_args"] == ["--set-xmark", "0x4000/0x4000"]
    nth = rules[("KUBE-SVC-ROUNDROBIN000000", 1)]["matches"][-3:]
    assert [(m["option"], m["args"]) for m in nth] == [
        ("--mode", ["nth"]),
        ("--every", ["3"]),
        ("--packet", ["0"]),
    ]
    goto = rules[("KUBE-EXT-ZJD7AVXQ6BVZEEGD", 2)]
    assert (goto["jump_kind"], goto["target"]) == ("g", "KUBE-SVC-ZJD7AVXQ6BVZEEGD")
    filt = _rules("netns-iptables-save.txt", table="filter")
    assert filt[("KUBE-SERVICES", 2)]["comment"] == "weird: 'quote' \"dq\" back\\slash"
    assert filt[("KUBE-SERVICES", 3)]["comment"] == "-leading-dash"
    assert filt[("FORWARD", 3)]["in_iface"] == "!cni0"
    conntrack = filt[("KUBE-FIREWALL", 1)]["matches"][-1]
    assert (conntrack["option"], conntrack["negated"]) == ("--ctstate", True)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('-m comment --comment "a b"', [("-m", False), ("comment", False), ("--comment", False),
                                         ("a b", True)]),
        (r'--comment "x \"y\" \'z\' \\w"', [("--comment", False), ("x \"y\" 'z' \\w", True)]),
        ('--comment ""', [("--comment", False), ("", True)]),
        ('a"b c"d', [("ab c", True), ("d", False)]),  # a closing quote ends the word
        ("a\\b  \t c", [("a\\b", False), ("c", False)]),  # backslash is literal outside quotes
    ],
)  # fmt: skip
def test_split_words_like_iptables_restore(text: str, words: list[tuple[str, bool]]) -> None:
    assert iptables.split_words(text) == words


def test_unbalanced_quote_is_rejected() -> None:
    chunk = iptables.parse('-A X -m comment --comment "cut in ha', "iptables-rules")
    assert chunk.records_rejected == 1
    assert "unbalanced double quote" in chunk.errors[0].reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("-A X -j", "-j has no target"),
        ("-A X -p tcp -m tcp -j DNAT --to-destination", "--to-destination has no value"),
        ("-A X -j DNAT --to-destination 10.10.1", "not address[:port]"),
        ("-A X -m statistic --mode random --probability", "--probability has no value"),
        ("-A X -s 10.10.2 -j RETURN", "not an address"),
        ("-A X ! -d 10.0.0.0/8 !", "'!' at the end"),
        ("-A", "-A without a chain"),
        ("[1:x] -A X -j RETURN", "bad [packets:bytes]"),
        ("-I X 1 -j RETURN", "is a command"),
        ("-N", "-N line is not"),
        (":KUBE-X - [0:", "chain line is not"),
        ("...", "not an iptables-save or iptables -S line"),
    ],
)
def test_damaged_lines_are_rejected_with_a_reason(line: str, reason: str) -> None:
    chunk = iptables.parse(f"*nat\n{line}\nCOMMIT\n", "iptables-save")
    chunk.check_counts()
    assert [(e.line, e.is_rejection) for e in chunk.errors] == [(2, True)]
    assert reason in chunk.errors[0].reason


def test_rule_num_counts_rejected_lines_and_restarts_per_table() -> None:
    rules = _rules("damaged-save-c-paste.txt")
    assert sorted(k[1] for k in rules if k[0] == "KUBE-SVC-TCOU7JCQXEZGVUNU") == [1, 3]
    s_then_nat = _parse("netns-iptables-S-filter-then-nat.txt").frames[RULES]
    services = s_then_nat.filter(chain="KUBE-SERVICES")
    assert services["table_name"].to_list() == [None] * 3 + ["nat"] * 6
    assert services["rule_num"].to_list() == [1, 2, 3, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("text", "table"),
    [
        ("-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n", "nat"),
        ("-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n", "nat"),
        ("-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
         "-P POSTROUTING ACCEPT\n", None),  # mangle
        ("-P PREROUTING ACCEPT\n-A PREROUTING -j KUBE-SERVICES\n", None),
        ("-A KUBE-SEP-X -p tcp -m tcp -j DNAT --to-destination 10.0.0.1:80\n", "nat"),
        ("-A KUBE-POSTROUTING -j MASQUERADE --random-fully\n", "nat"),
        ("-A INPUT -j ACCEPT\n", None),
    ],
)  # fmt: skip
def test_table_inference_without_header(text: str, table: str | None) -> None:
    chunk = iptables.parse(text, "iptables-S")
    tables = set(chunk.frames[RULES]["table_name"]) | set(chunk.frames[CHAINS]["table_name"])
    assert tables == {table}


def test_family_from_header_and_addresses() -> None:
    assert set(_parse("netns-ip6tables-save.txt").frames[RULES]["family"]) == {"ipv6"}
    assert set(_parse("netns-iptables-save.txt").frames[RULES]["family"]) == {"ipv4"}
    assert set(_parse("seed-0439-S-nat-grep-KUBE-NODE-PORT.txt").frames[RULES]["family"]) == {None}


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "iptables-save"),
        ("-P INPUT ACCEPT\n-A INPUT -j ACCEPT\n", "iptables-S"),
        ("-A INPUT -j ACCEPT\n-A INPUT -j DROP\n", "iptables-rules"),
    ],
)
def test_detect_kinds(text: str, kind: str) -> None:
    detection = iptables.detect(text)
    assert detection is not None and detection.kind == kind


def test_detect_ignores_ipvsadm_save_and_prose() -> None:
    ipvsadm_save = (
        "-A -t 10.10.11.77:http -s wlc\n-a -t 10.10.11.77:http -r 10.0.0.1:http -m -w 1\n"
    )
    assert iptables.detect(ipvsadm_save) is None
    assert iptables.detect("# just a comment\nsome prose\n") is None


def _structural(text: str) -> bool:
    return (
        not text
        or text[0] == "#"
        or text == "COMMIT"
        or re.fullmatch(r"\*[A-Za-z0-9_-]+", text) is not None
    )


def _check_every_line_accounted(text: str, kind: str) -> None:
    """Each non-structural line is exactly one record: a row or a rejection on that line."""
    chunk = iptables.parse(text, kind)
    chunk.check_counts()
    records = [
        no for no, raw in enumerate(text.splitlines(), 1) if not _structural(clean_line(raw))
    ]
    located = [*chunk.frames[RULES]["source_line"], *chunk.frames[CHAINS]["source_line"]]
    located += [e.line for e in chunk.errors]
    assert sorted(located) == records
    assert chunk.records_read == len(records)


@SETTINGS
@given(text=st.text(max_size=300), kind=st.sampled_from(iptables.KINDS))
def test_arbitrary_text_never_raises(text: str, kind: str) -> None:
    _check_every_line_accounted(text, kind)


FIXTURE_LINES = [
    line
    for path in sorted(FIXTURES.glob("*.txt"))
    for line in decode_text(path.read_bytes()).splitlines()
]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.sampled_from(FIXTURE_LINES), min_size=1, max_size=12))
    out = []
    for line in lines:
        op = draw(st.sampled_from(["keep", "delete", "duplicate", "cut", "tab", "quote"]))
        at = draw(st.integers(0, max(len(line) - 1, 0)))
        if op == "delete":
            line = line[:at] + line[at + 1 :]
        elif op == "duplicate":
            line = line[:at] + line[at : at + 1] + line[at:]
        elif op == "cut":
            line = line[:at]
        elif op == "tab":
            line = line[:at] + "\t" + line[at:]
        elif op == "quote":
            line = line[:at] + '"' + line[at:]
        out.append(line)
    return "\n".join(out)


@SETTINGS
@given(text=_mutated(), kind=st.sampled_from(iptables.KINDS))
def test_mutated_fixture_lines_never_raise(text: str, kind: str) -> None:
    _check_every_line_accounted(text, kind)

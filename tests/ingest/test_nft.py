"""nft ingestor: text and JSON of the same kernel-printed ruleset agree; damage is located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.bundle import decode_text, sniff
from pipeline.ingest import nft
from pipeline.ingest.nft.render import RenderError, rule_text
from pipeline.ingest.nft.rows import priority_number, rule_columns, seconds, time_text
from tests.ingest.nft_compare import differences, parse

FIXTURES = Path(__file__).parent.parent / "fixtures" / "nft"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PAIRS = ["lab-vmap-handles", "lab-dnat-map-worker", "mixed-families-handles"]


def _read(name: str) -> str:
    return decode_text((FIXTURES / name).read_bytes())


@pytest.mark.parametrize("stem", PAIRS)
def test_text_and_json_of_one_kernel_ruleset_give_the_same_rows(stem: str) -> None:
    text_chunk = parse(_read(f"{stem}.txt"), "nft-ruleset")
    json_chunk = parse(_read(f"{stem}-json.json"), "nft-json")
    with_handles = "handles" in stem  # the bundle's dump is plain `nft list ruleset`
    kube_proxy_only = {
        name: frame.filter(frame["table_name"] == "kube-proxy")
        for name, frame in json_chunk.frames.items()
    }
    assert not json_chunk.errors and not text_chunk.errors
    if stem.startswith("lab-"):  # iptables-nft's xt rules: the text shows nft's translation
        xt = json_chunk.frames["raw_nft_rules"].filter(json_chunk.frames["raw_nft_rules"]["has_xt"])
        assert set(xt["table_name"]) <= {"nat", "filter"}
        for chunk in (text_chunk, json_chunk):
            chunk.frames = {
                name: frame.filter(frame["table_name"] == "kube-proxy")
                for name, frame in chunk.frames.items()
            }
        assert kube_proxy_only["raw_nft_rules"].height > 10
    assert differences(text_chunk, json_chunk, with_handles) == []


def test_every_record_is_accounted_for_and_samples_parse() -> None:
    for path in sorted(FIXTURES.iterdir()):
        if ".expected." in path.name or path.suffix == ".md":
            continue
        sniffed = sniff(path, path.read_bytes())
        assert sniffed.ingestor is nft, path.name
        assert sniffed.kind is not None
        chunk = nft.parse(decode_text(path.read_bytes()), sniffed.kind)
        chunk.check_counts()
        assert chunk.records_read > 0
        if not path.name.startswith("damaged-"):
            assert chunk.records_rejected == 0, (path.name, chunk.errors)
        assert chunk.records_parsed >= 0.95 * chunk.records_read, path.name


def test_kube_proxy_v136_table_rows() -> None:
    chunk = parse(_read("blog-pi-v1.36-list-table-kube-proxy.txt"), "nft-ruleset")
    sets = {r["name"]: r for r in chunk.frames["raw_nft_sets"].to_dicts()}
    assert sets["service-ips"]["kind"] == "map" and sets["service-ips"]["data_type"] == "verdict"
    assert sets["cluster-ips"]["element_count"] == 3
    elements = chunk.frames["raw_nft_elements"].filter(
        chunk.frames["raw_nft_elements"]["set_name"] == "service-ips"
    )
    assert elements["value"].to_list() == [
        "goto service-YVSKLJHA-kproxy-lab/backend-api/tcp/http",
        "goto service-2QRHZV4L-default/kubernetes/tcp/https",
    ]
    assert elements["source_line"].to_list() == [26, 27]  # a continuation line has its own line
    rules = chunk.frames["raw_nft_rules"].to_dicts()
    dnat = [r for r in rules if r["nat"] == "dnat"]
    assert [r["chain"].split("-", 2)[2] for r in dnat] == [
        "default/kubernetes/tcp/https",
        "kproxy-lab/backend-api/tcp/http",
    ]
    hairpin = next(r for r in rules if "hairpin" in r["rule"])
    assert hairpin["nat"] == "masquerade" and hairpin["set_refs"] == ["hairpin-connections"]
    services = [r for r in rules if r["chain"] == "services"]
    assert [r["position"] for r in services] == [1, 2, 3]
    assert services[0]["comment"] == "masquerade clusterIP traffic from outside cluster"


def test_list_tables_output_gives_one_row_per_table() -> None:
    chunk = parse(_read("nft-list-tables-kube.txt"), "nft-ruleset")
    tables = chunk.frames["raw_nft_tables"]
    assert tables.height == 8
    assert ("ip6", "kube-proxy") in set(zip(tables["family"], tables["table_name"], strict=True))


def test_cut_ruleset_keeps_what_came_before_and_says_where_it_ends() -> None:
    chunk = parse(_read("damaged-cut-mid-table.txt"), "nft-ruleset")
    rejected = [e for e in chunk.errors if e.is_rejection]
    assert [e.line for e in rejected] == [211]
    warnings = [e.reason for e in chunk.errors if not e.is_rejection]
    assert any("inside table kube-proxy" in w for w in warnings)
    assert chunk.frames["raw_nft_rules"]["source_line"].max() < 211
    full = parse(_read("lab-vmap-handles.txt"), "nft-ruleset")
    before = full.frames["raw_nft_rules"].filter(full.frames["raw_nft_rules"]["source_line"] < 211)
    assert chunk.frames["raw_nft_rules"].equals(before)


def test_a_rule_cut_at_a_clean_word_on_the_last_line_is_rejected() -> None:
    text = "table ip t {\n\tchain c {\n\t\tip daddr 10.0.0.1 tcp dport 80 jump\n"
    chunk = parse(text, "nft-ruleset")
    assert chunk.records_rejected == 1 and chunk.errors[0].line == 3
    assert chunk.records_read == 3  # table, chain, the cut rule


def test_unknown_statements_and_prose_are_rejected_with_their_line() -> None:
    chunk = parse(_read("damaged-unknown-statements.txt"), "nft-ruleset")
    rejected = {e.line: e.reason for e in chunk.errors if e.is_rejection}
    assert sorted(rejected) == [1, 146, 194]
    assert "frobnicate" in rejected[146] and "quote" in rejected[194]
    rules = chunk.frames["raw_nft_rules"]
    chain = rules.filter(rules["chain"] == "nat-prerouting")
    assert chain["position"].to_list() == [1]  # the rejected second rule still took place 2


def test_json_of_another_version_rejects_only_what_it_cannot_read() -> None:
    chunk = parse(_read("damaged-json-unknown.json"), "nft-json")
    warnings = [e.reason for e in chunk.errors if not e.is_rejection]
    assert len(warnings) == 1 and "schema version 2" in warnings[0]
    reasons = sorted(e.reason for e in chunk.errors if e.is_rejection)
    assert len(reasons) == 3
    assert any("'osf'" in r for r in reasons) and any("'frobnicate'" in r for r in reasons)
    assert any("tunnel2" in r for r in reasons)
    assert all(e.offset is not None and e.offset > 0 for e in chunk.errors if e.is_rejection)
    good = parse(_read("lab-vmap-handles-json.json"), "nft-json")
    assert chunk.records_parsed == good.records_parsed - 2


def test_cut_json_keeps_the_complete_objects() -> None:
    chunk = parse(_read("damaged-json-cut.json"), "nft-json")
    assert chunk.records_rejected == 1
    assert chunk.records_parsed > 50


@pytest.mark.parametrize(
    ("text", "family", "value"),
    [
        ("dstnat", "ip", -100),
        ("srcnat", "ip", 100),
        ("dstnat - 10", "ip", -110),
        ("srcnat + 10", "inet", 110),
        ("-450", "netdev", -450),
        ("dstnat", "bridge", -300),
        ("mangle", "ip", -150),
    ],
)
def test_priority_names(text: str, family: str, value: int) -> None:
    assert priority_number(text, family) == value


def test_time_round_trip() -> None:
    for value in (1, 59, 60, 3600, 10800, 90061):
        assert seconds(time_text(value)) == value
    assert seconds("3h") == 10800


def test_rule_columns_tell_statements_from_matches() -> None:
    assert rule_columns("ct status dnat counter packets 1 bytes 2 drop") == {
        "set_refs": [],
        "verdict": "drop",
        "pkts": 1,
        "bytes": 2,
    }
    cols = rule_columns('meta l4proto tcp dnat to 10.0.0.1:80 comment "a b"')
    assert cols["nat"] == "dnat" and cols["nat_args"] == "to 10.0.0.1:80"
    assert cols["comment"] == "a b"


def test_unknown_json_expressions_raise_instead_of_printing_wrong() -> None:
    with pytest.raises(RenderError, match="'osf'"):
        rule_text([{"match": {"op": "==", "left": {"osf": {}}, "right": "x"}}], "ip")
    with pytest.raises(RenderError, match="lacks"):
        rule_text([{"dnat": {"addr": {"concat": 5}}}], "ip")


_JSON_HEAD = '{"nftables": [{"metainfo": {"json_schema_version": 1}}, '


@SETTINGS
@given(st.text(max_size=400))
def test_text_parser_never_crashes(text: str) -> None:
    chunk = nft.parse("table ip t {\n\tchain c {\n" + text, "nft-ruleset")
    chunk.check_counts()


@SETTINGS
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "rule",
                        "expr",
                        "match",
                        "left",
                        "set",
                        "map",
                        "family",
                        "table",
                        "chain",
                        "name",
                        "elem",
                    ]
                ),
                inner,
                max_size=3,
            )
        ),
        max_leaves=12,
    )
)
def test_json_parser_never_crashes(value: object) -> None:
    chunk = nft.parse(_JSON_HEAD + json.dumps(value) + "]}", "nft-json")
    chunk.check_counts()

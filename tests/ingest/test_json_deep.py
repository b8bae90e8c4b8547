"""JSON nested too deeply for Python's decoder: one rejected record, the rest of the file kept.

A kubectl List whose second item is nested 100,000 levels deep used to raise RecursionError,
which failed the whole file and lost its valid pods.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.ingest import k8s
from pipeline.ingest.json_located import MAX_DEPTH, iter_json, json_depth
from pipeline.ingest.records import RecordError

K8S = Path(__file__).parent.parent / "fixtures" / "k8s"
PODS = json.loads((K8S / "kubectl-get-raw-api-v1-namespaces-default-pods.json").read_text())


def _pod(name: str) -> str:
    """A real pod (from the fixture) under another name, printed as kubectl prints it."""
    pod: dict[str, Any] = json.loads(json.dumps(PODS["items"][0]))
    pod["metadata"]["name"] = name
    return json.dumps({"apiVersion": "v1", "kind": "Pod", **pod}, indent=4)


def _deep(depth: int) -> str:
    """A Pod whose spec holds `depth` nested arrays: the item is depth + 2 levels deep."""
    return '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "deep"}, "spec": {"x": ' + (
        "[" * depth + "]" * depth + "}}"
    )


def _list(items: list[str]) -> str:
    """A kubectl List as `kubectl get pods -o json` prints it, each item starting on a line."""
    return (
        '{\n    "apiVersion": "v1",\n    "items": [\n'
        + ",\n".join(items)
        + '\n    ],\n    "kind": "List",\n    "metadata": {\n        "resourceVersion": ""\n'
        "    }\n}\n"
    )


def _line_of(text: str, needle: str) -> int:
    return text.count("\n", 0, text.index(needle)) + 1


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
def test_a_deep_item_is_one_rejected_record(depth: int) -> None:
    deep = _deep(depth)
    text = _list([_pod("pod-1"), deep, _pod("pod-3")])
    chunk = k8s.parse(text, "kubectl-json")
    chunk.check_counts()
    assert (chunk.records_read, chunk.records_parsed, chunk.records_rejected) == (3, 2, 1)
    assert chunk.frames["raw_k8s_pods"]["pod"].to_list() == ["pod-1", "pod-3"]
    [error] = chunk.errors
    assert error.reason == f"nested too deeply ({depth + 2} levels > {MAX_DEPTH})"
    assert error.line == _line_of(text, '{"apiVersion": "v1", "kind": "Pod", "metadata": {"n')


def test_an_item_at_the_limit_is_parsed() -> None:
    text = _list([_deep(MAX_DEPTH - 2)])
    chunk = k8s.parse(text, "kubectl-json")
    assert (chunk.records_read, chunk.records_parsed, chunk.errors) == (1, 1, [])


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_deep(100_000), id="top-level object"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="top-level array"),
        pytest.param('{"apiVersion": "v1", "kind": "List", "items": [], "metadata": '
                     + "[" * 100_000 + "]" * 100_000 + "}", id="List header"),
        pytest.param(_deep(100_000)[:-50_000], id="cut off"),
    ],
)  # fmt: skip
def test_a_deep_document_is_one_rejected_record(text: str) -> None:
    chunk = k8s.parse(text, "kubectl-json")
    chunk.check_counts()
    assert (chunk.records_read, chunk.records_rejected) == (1, 1)
    [error] = chunk.errors
    assert "nested too deeply" in error.reason and error.line == 1


def test_a_deep_element_of_ip_json_keeps_the_others() -> None:
    """host.py (ip -j) walks the same way: the element after the deep one is still read."""
    links = [{"ifindex": 1, "ifname": "lo"}, {"ifindex": 2, "ifname": "eth0"}]
    text = "[" + json.dumps(links[0]) + ',{"x":' + "[" * 5_000 + "]" * 5_000 + "},"
    text += json.dumps(links[1]) + "]"
    walked = list(iter_json(text))
    assert [type(w).__name__ for w in walked] == ["JsonElement", "RecordError", "JsonElement"]
    assert [w.value for w in walked if not isinstance(w, RecordError)] == links


def test_a_deep_kubectl_file_through_analyze(tmp_path: Path) -> None:
    """The real file on disk through the command: 2 pods in the database, 1 located error."""
    bundle = tmp_path / "b" / "cluster"
    bundle.mkdir(parents=True)
    text = _list([_pod("pod-1"), _deep(100_000), _pod("pod-3")])
    (bundle / "pods.json").write_text(text)
    db = tmp_path / "n.duckdb"
    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "b"), "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    line = _line_of(text, '{"apiVersion": "v1", "kind": "Pod", "metadata": {"n')
    assert f"pods.json:{line}: error: nested too deeply (100002 levels > 512)" in result.stderr
    assert "pods.json: kubectl-json: read 3 = parsed 2 + rejected 1" in result.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select pod from raw_k8s_pods order by pod").fetchall() == [
        ("pod-1",),
        ("pod-3",),
    ]
    assert con.execute("select source_line, reason from raw_ingest_errors").fetchall() == [
        (line, "nested too deeply (100002 levels > 512)")
    ]
    con.close()


# ---------------------------------------------------------------- properties

_BRACKETY = st.text(alphabet='[]{}"\\ax\n', max_size=8)  # strings full of brackets and escapes
JSON_VALUES = st.recursive(
    st.none() | st.integers() | _BRACKETY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_BRACKETY, inner, max_size=3),
    max_leaves=25,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(
    value=JSON_VALUES.filter(lambda v: isinstance(v, list | dict)), indent=st.none() | st.just(1)
)
def test_json_depth_equals_the_decoded_depth(value: object, indent: int | None) -> None:
    text = "  " + json.dumps(value, indent=indent) + " [1]"
    assert json_depth(text, 2) == (_depth(value), len(text) - 4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    depths=st.lists(
        st.integers(1, 3 * MAX_DEPTH) | st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3), max_size=5
    ),
    pods=st.integers(0, 3),
)
def test_deep_items_among_pods(depths: list[int], pods: int) -> None:
    """Every item is one record; exactly the items deeper than MAX_DEPTH are rejected."""
    items = [_deep(d) for d in depths] + [_pod(f"p{i}") for i in range(pods)]
    chunk = k8s.parse(_list(items), "kubectl-json")
    chunk.check_counts()
    too_deep = sum(1 for d in depths if d + 2 > MAX_DEPTH)
    assert chunk.records_read == len(items)
    assert chunk.records_rejected == too_deep
    assert all(re.fullmatch(r"nested too deeply \(\d+ levels > 512\)", e.reason)
               for e in chunk.errors)  # fmt: skip
    assert chunk.frames["raw_k8s_pods"].height == pods + len(depths) - too_deep

"""Properties of the kubectl -o json ingestor: never raises, counts every object, on arbitrary
text, arbitrary JSON items and damaged copies of the fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest import k8s

K8S = Path(__file__).parent.parent / "fixtures" / "k8s"
SOURCES = sorted(p for p in K8S.glob("*.json") if ".expected." not in p.name)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALARS = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["kind", "metadata", "name", "namespace", "spec", "status", "ports", "port", "podIPs",
     "clusterIPs", "endpoints", "addresses", "conditions", "subsets", "items", "targetRef"]
)  # fmt: skip
K8S_LIKE = st.recursive(
    SCALARS | st.sampled_from(["Pod", "Service", "EndpointSlice", "Endpoints", "Node", "10.0.0.1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)


def _check(text: str) -> None:
    chunk = k8s.parse(text, "kubectl-json")
    chunk.check_counts()


@SETTINGS
@given(text=st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    _check(text)


@SETTINGS
@given(
    items=st.lists(JSON_VALUES | K8S_LIKE, max_size=5), kind=st.sampled_from(["List", "PodList"])
)
def test_arbitrary_items(items: list[Any], kind: str) -> None:
    _check(json.dumps({"apiVersion": "v1", "items": items, "kind": kind}, indent=2))


@SETTINGS
@given(obj=st.dictionaries(KEYS, K8S_LIKE, max_size=6), kind=st.sampled_from(list(k8s._HANDLERS)))
def test_arbitrary_objects_of_known_kinds(obj: dict[str, Any], kind: str) -> None:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    obj = {**obj, "kind": kind, "metadata": {"name": "x", **meta}}
    _check(json.dumps(obj))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 40)), max_size=4))
def test_damaged_fixtures(source: Path, cuts: list[tuple[int, int]]) -> None:
    text = source.read_text()
    for where, length in cuts:  # delete or duplicate a run of characters, or cut the end
        at = where % (len(text) + 1)
        if length == 0:
            text = text[:at]
        elif length % 2:
            text = text[:at] + text[at + length :]
        else:
            text = text[:at] + text[at : at + length] * 2 + text[at:]
    _check(text)

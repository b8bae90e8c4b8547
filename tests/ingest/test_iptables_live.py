"""Oracle: the real iptables in a throwaway network namespace (root only, skipped otherwise).

Loads the fixture ruleset with iptables-restore, then checks that
- what we parse from `iptables-save` and from `iptables -S` agrees, and
- the rules rebuilt from our tokens, fed back through iptables-restore into a fresh namespace,
  make iptables-save print exactly the same tables: the tokenisation is what iptables reads.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.ingest import iptables

FIXTURES = Path(__file__).parent.parent / "fixtures"
TOOLS = ("ip", "iptables-restore", "iptables-save", "iptables", "ipset")
pytestmark = pytest.mark.root


def _run(ns: str, *cmd: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, *cmd],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.fixture
def netns() -> Iterator[Any]:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS):
        pytest.skip("needs root, iproute2, iptables and ipset")
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"natlens-test-{os.getpid()}-{suffix}"
        try:
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot create a network namespace: {exc.stderr!r}")
        made.append(name)
        # ipsets are per namespace on current kernels; the rules reference these sets
        ipsets = (FIXTURES / "ipset" / "netns-ipset-restore.txt").read_text()
        _run(name, "ipset", "restore", stdin=ipsets)
        return name

    try:
        yield make
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "exec", name, "ipset", "destroy"], capture_output=True)
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def _quote(word: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:,!-]+", word):
        return word
    return '"' + re.sub(r"([\"'\\])", r"\\\1", word) + '"'


def _restore_text(chunk: Any) -> str:
    """iptables-restore input built only from the parsed columns, one block per table."""
    chains = chunk.frames["raw_iptables_chains"].to_dicts()
    rules = chunk.frames["raw_iptables_rules"].to_dicts()
    lines = []
    for table in dict.fromkeys(row["table_name"] for row in chains):
        lines.append(f"*{table}")
        for row in (r for r in chains if r["table_name"] == table):
            lines.append(f":{row['chain']} {row['policy'] or '-'} [0:0]")
        for row in (r for r in rules if r["table_name"] == table):
            words: list[str] = []
            for match in row["matches"]:
                words += (["!"] if match["negated"] else []) + [match["option"], *match["args"]]
            if row["jump_kind"]:
                words += [f"-{row['jump_kind']}", row["target"], *row["target_args"]]
            lines.append(" ".join(["-A", row["chain"], *(_quote(w) for w in words)]))
        lines.append("COMMIT")
    return "\n".join([*lines, ""])


def _rules_only(save: str) -> list[str]:
    return [line for line in save.splitlines() if not line.startswith("#")]


def test_real_iptables_agrees_with_the_parser(netns: Any) -> None:
    first = netns("a")
    _run(
        first, "iptables-restore", stdin=(FIXTURES / "iptables" / "netns-rules-v4.txt").read_text()
    )
    saved = _run(first, "iptables-save", "-t", "nat")
    listed = _run(first, "iptables", "-t", "nat", "-S")
    from_save = iptables.parse(saved, "iptables-save")
    from_s = iptables.parse(listed, "iptables-S")
    for chunk in (from_save, from_s):
        chunk.check_counts()
        assert chunk.records_rejected == 0
    cols = ("chain", "rule_num", "jump_kind", "target", "target_args", "matches")
    assert (
        from_save.frames["raw_iptables_rules"].select(cols).to_dicts()
        == from_s.frames["raw_iptables_rules"].select(cols).to_dicts()
    )

    everything = _run(first, "iptables-save")
    second = netns("b")
    _run(
        second, "iptables-restore", stdin=_restore_text(iptables.parse(everything, "iptables-save"))
    )
    assert _rules_only(_run(second, "iptables-save")) == _rules_only(everything)

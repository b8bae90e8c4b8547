"""Ground-truth checks of `connections`, `backend_distribution` and `clock_offsets` on lab bundles.

Used on the committed lab bundles (tests/test_connections_lab.py) and on freshly generated ones
(root). ground_truth.csv has one row per request with what the backend itself saw (RemoteAddr)
and the node that did the DNAT, so every link natlens makes is compared with the kernel's result.
"""

from __future__ import annotations

import csv
import shutil
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from typer.testing import CliRunner

from pipeline.cli import app

GT_CLASS = {"none": "none", "node_ip": "node IP", "pod_gateway": "pod gateway"}
PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}


@dataclass
class Outcome:
    """Per request: matched right, matched wrong, or listed unmatched/ambiguous (or missing)."""

    total: int = 0
    right: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    by_status: dict[str, list[str]] = field(default_factory=dict)

    @property
    def right_share(self) -> float:
        return len(self.right) / self.total

    def summary(self) -> str:
        rest = ", ".join(f"{k} {len(v)}" for k, v in sorted(self.by_status.items()))
        return (
            f"{len(self.right)}/{self.total} right ({self.right_share:.1%}), "
            f"{len(self.wrong)} wrong" + (f", {rest}" if rest else "")
        )


def analyze(bundle: Path, db: Path) -> duckdb.DuckDBPyConnection:
    result = CliRunner().invoke(app, ["analyze", str(bundle), "--db", str(db), "--quiet"])
    assert result.exit_code == 0, result.stderr
    return duckdb.connect(str(db), read_only=True)


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def truth(bundle: Path) -> list[dict[str, str]]:
    with (bundle / "ground_truth.csv").open() as handle:
        return list(csv.DictReader(handle))


def copy_without(bundle: Path, dest: Path, word: str) -> Path:
    """A copy of the bundle without the files whose name contains `word` (conntrack, .pcap)."""
    target = dest / bundle.name
    shutil.copytree(bundle, target)
    removed = [p for p in target.rglob("*") if p.is_file() and word in p.name]
    assert removed, f"no {word} files in {bundle}"
    for path in removed:
        path.unlink()
    return target


def shift_pcaps(folder: Path, seconds: float) -> None:
    """Move every packet time of the classic pcaps in `folder` by `seconds` (a skewed clock)."""
    for path in sorted(folder.glob("*.pcap")):
        data = bytearray(path.read_bytes())
        endian, units = PCAP_MAGIC[bytes(data[:4])]
        shift = round(seconds * units)
        pos = 24
        while pos + 16 <= len(data):
            sec, frac, incl, _ = struct.unpack_from(endian + "IIII", data, pos)
            total = sec * units + frac + shift
            struct.pack_into(endian + "II", data, pos, total // units, total % units)
            pos += 16 + incl
        path.write_bytes(bytes(data))


def check_connections(bundle: Path, con: duckdb.DuckDBPyConnection) -> Outcome:
    """Look every request up by its pre-NAT tuple; a matched row must be right in every field."""
    found: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for c in rows(con, "select * exclude (legs) from connections"):
        key = (c["proto"], c["client_ip"], c["client_port"], c["dialed_ip"], c["dialed_port"])
        found.setdefault(key, []).append(c)
    outcome = Outcome()
    for gt in truth(bundle):
        outcome.total += 1
        rid = gt["request_id"]
        key = (
            gt["proto"],
            gt["client_ip"],
            int(gt["client_port"]),
            gt["dialed_ip"],
            int(gt["dialed_port"]),
        )
        candidates = found.get(key, [])
        matched = [c for c in candidates if c["match_status"] == "matched"]
        if not matched:
            status = candidates[0]["match_status"] if candidates else "missing"
            outcome.by_status.setdefault(status, []).append(rid)
            continue
        c = matched[0]
        expected = (
            gt["backend_ip"],
            int(gt["backend_port"]),
            gt["remote_ip"],
            int(gt["remote_port"]),
            gt["dnat_node"],
            GT_CLASS[gt["snat_class"]],
        )
        got = (
            c["backend_ip"],
            c["backend_port"],
            c["snat_ip"],
            c["snat_port"],
            c["dnat_node"],
            c["snat_class"],
        )
        if len(matched) == 1 and got == expected:
            outcome.right.append(rid)
        else:
            outcome.wrong.append(f"request {rid}: expected {expected}, got {got}")
    return outcome


def check_pcap_distribution(bundle: Path, con: duckdb.DuckDBPyConnection) -> None:
    """backend_distribution's packet-capture counts equal the ground truth's, backend by backend."""
    expected = Counter(
        (
            gt["proto"],
            gt["dialed_ip"],
            int(gt["dialed_port"]),
            gt["backend_ip"],
            int(gt["backend_port"]),
        )
        for gt in truth(bundle)
    )
    observed = {
        (r["proto"], r["dialed_ip"], r["dialed_port"], r["backend_ip"], r["backend_port"]): int(
            r["pcap_connections"]
        )
        for r in rows(con, "select * from backend_distribution where scope = 'all'")
        if r["pcap_connections"]
    }
    assert observed == dict(expected)
    per_node = Counter(
        (
            gt["dnat_node"],
            gt["proto"],
            gt["dialed_ip"],
            int(gt["dialed_port"]),
            gt["backend_ip"],
            int(gt["backend_port"]),
        )
        for gt in truth(bundle)
    )
    observed_per_node = {
        (
            r["node"],
            r["proto"],
            r["dialed_ip"],
            r["dialed_port"],
            r["backend_ip"],
            r["backend_port"],
        ): int(r["pcap_connections"])
        for r in rows(con, "select * from backend_distribution where scope = 'node'")
        if r["pcap_connections"]
    }
    assert observed_per_node == dict(per_node)


def check_clock_offsets(
    con: duckdb.DuckDBPyConnection, expected_ms: dict[tuple[str, str], float] | None = None
) -> list[dict[str, Any]]:
    """Every node pair that shares packets has an offset: 0 (one kernel clock) unless given."""
    offsets = rows(con, "select * from clock_offsets")
    assert offsets
    for o in offsets:
        want = (expected_ms or {}).get((o["node_a"], o["node_b"]), 0.0)
        assert abs(o["offset_ms"] - want) < 1.0, o
        assert o["packets_used"] > 0 and o["packets_a_to_b"] > 0 and o["packets_b_to_a"] > 0, o
        assert 0 <= o["one_way_delay_ms"] < 5, o
    return offsets


def check_report(text: str, services: set[str]) -> None:
    """The report has, per service, the backend/SNAT-class table and one example traced by legs."""
    section = text.split("## Connections through NAT", 1)[1].split("\n## ", 1)[0]
    for service in services:
        part = section.split(f"### {service}\n", 1)[1].split("\n### ", 1)[0]
        assert "| backend | name | SNAT class | connections |" in part, service
        assert "Example: " in part and "| # | leg | node |" in part, service
        legs = [
            line
            for line in part.splitlines()
            if line.startswith("| 1 |") or line.startswith("| 2 |")
        ]
        assert len(legs) == 2, part
        assert "| pre_nat |" in part and "| post_nat |" in part, part

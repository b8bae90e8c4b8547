"""With kubectl JSON in the bundle, flows and conntrack_entries name pods, nodes and Services.

Oracle: the lab's ground truth (what each request dialed, which Service that is, which backend
pod answered), not the SQL's own inputs.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parent.parent


def _truth(bundle: Path) -> list[dict[str, str]]:
    with (bundle / "ground_truth.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("bundle_name", ["lab-iptables", "lab-ipvs"])
def test_flows_and_conntrack_entries_name_what_the_ground_truth_says(
    analyzed: Callable[[Path], tuple[Path, str]], bundle_name: str
) -> None:
    bundle = REPO / "captures" / bundle_name
    db, _ = analyzed(bundle)
    con = duckdb.connect(str(db), read_only=True)
    try:
        flows = {
            (r[0], r[1], r[2], r[3], r[4]): r[5:]
            for r in con.execute(
                "select orig_h, orig_p, resp_h, resp_p, proto, orig_name, resp_name from flows"
            ).fetchall()
        }
        entries = {
            (r[0], r[1], r[2], r[3], r[4], r[5]): r[6:]
            for r in con.execute(
                "select node, orig_src, orig_sport, orig_dst, orig_dport, proto, "
                "orig_src_name, orig_dst_name, reply_src_name from conntrack_entries"
            ).fetchall()
        }
    finally:
        con.close()
    checked_flows = checked_entries = 0
    for row in _truth(bundle):
        dialed_port = int(row["dialed_port"])
        key = (row["client_ip"], int(row["client_port"]), row["dialed_ip"], dialed_port)
        service = f"svc {row['service']}"
        flow = flows.get((*key, row["proto"]))
        if flow is not None:  # the external client's own side is not captured
            orig_name, resp_name = flow
            assert service in (resp_name or ""), (row["request_id"], resp_name)
            if row["client"] != "mypc":
                assert orig_name == f"pod default/{row['client']}", (row["request_id"], orig_name)
            checked_flows += 1
        entry = entries.get((row["dnat_node"], *key, row["proto"]))
        assert entry is not None, row["request_id"]
        src_name, dst_name, backend_name = entry
        assert service in (dst_name or ""), (row["request_id"], dst_name)
        assert backend_name == f"pod default/{row['backend_pod']}", row["request_id"]
        checked_entries += 1
    assert checked_entries == len(_truth(bundle)) == 150
    assert checked_flows >= 100

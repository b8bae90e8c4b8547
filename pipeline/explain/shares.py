"""What the rules promise each backend, and a goodness-of-fit test of what was observed.

- iptables mode: the rule walk of every observed connection gives P(DNAT to each endpoint)
  (a `statistic --probability` cascade or `--mode nth` round robin); summing those over the
  connections is the expected count per endpoint.
- IPVS: rr shares equally among real servers with weight > 0, wrr by weight; lc/wlc/sh/mh and
  the rest depend on live connection counts or hashes, so they are not predictable from counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb

from ..db import fetch_dicts

ServiceKey = tuple[str, str, str, str, int]  # bundle, node, proto, dialed_ip, dialed_port
SIGNIFICANCE = 0.05
WEIGHTED = {"wrr"}
EQUAL = {"rr"}


def _split(target: str) -> tuple[str, int | None]:
    host, sep, port = target.rpartition(":")
    if not sep or "]" in port or (host.count(":") > 0 and not host.endswith("]")):
        return target.strip("[]"), None
    return host.strip("[]"), int(port) if port.isdigit() else None


@dataclass
class _Tally:
    """The DNAT shares of one dialed service's connections, summed as they are explained."""

    connections: int = 0
    totals: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    has_shares: bool = False
    complete: bool = True
    basis: str = "iptables statistic (rule walk)"


class ShareTally:
    """Sums each connection's P(DNAT to each endpoint) per dialed service, in constant memory
    per service (a table of millions of connections is never held)."""

    def __init__(self) -> None:
        self.by_service: dict[ServiceKey, _Tally] = defaultdict(_Tally)

    def add(
        self,
        row: dict[str, Any],
        shares: dict[str, float],
        basis: str = "iptables statistic (rule walk)",
    ) -> None:
        key = (row["bundle_id"], row["node"], row["proto"], row["dialed_ip"], row["dialed_port"])
        tally = self.by_service[key]
        tally.connections += 1
        if shares:
            tally.basis = basis
        tally.has_shares = tally.has_shares or bool(shares)
        tally.complete = tally.complete and abs(sum(shares.values()) - 1.0) < 1e-6
        for target, p in shares.items():
            tally.totals[target] += p


def expected_rows(con: duckdb.DuckDBPyConnection, tally: ShareTally) -> list[dict[str, Any]]:
    ipvs = _ipvs_promises(con)
    out: list[dict[str, Any]] = []
    for key, service in sorted(tally.by_service.items(), key=lambda kv: str(kv[0])):
        bundle_id, node, proto, dialed_ip, dialed_port = key
        base = {
            "bundle_id": bundle_id,
            "node": node,
            "source_file": None,
            "proto": proto,
            "dialed_ip": dialed_ip,
            "dialed_port": dialed_port,
        }
        n = service.connections
        if service.has_shares:
            complete = service.complete
            for target, expected in sorted(service.totals.items()):
                ip, port = _split(target)
                out.append(
                    {
                        **base,
                        "backend_ip": ip,
                        "backend_port": port or None,
                        "expected_share": expected / n if complete else None,
                        "expected_connections": expected if complete else None,
                        "basis": service.basis,
                        "is_predictable": complete,
                    }
                )
            continue
        promise = ipvs.get(key)
        if promise is None:
            continue
        scheduler, backends = promise
        total_weight = sum(w for _, _, w in backends if w > 0)
        live = sum(1 for _, _, w in backends if w > 0)
        for ip, port, weight in backends:
            share: float | None
            if scheduler in EQUAL:
                share = (1.0 / live) if weight > 0 else 0.0
            elif scheduler in WEIGHTED:
                share = (weight / total_weight) if weight > 0 and total_weight else 0.0
            else:
                share = None
            out.append(
                {
                    **base,
                    "backend_ip": ip,
                    "backend_port": port,
                    "expected_share": share,
                    "expected_connections": None if share is None else share * n,
                    "basis": f"ipvs {scheduler}"
                    + ("" if share is not None else " (depends on live state)"),
                    "is_predictable": share is not None,
                }
            )
    return out


def _ipvs_promises(
    con: duckdb.DuckDBPyConnection,
) -> dict[ServiceKey, tuple[str, list[tuple[str, int, int]]]]:
    services = fetch_dicts(
        con,
        "select bundle_id, node, proto, vip, vport, scheduler, source_file, source_line "
        "from stg_ipvs__services where format in ('list', 'save', 'proc') and vport is not null "
        "order by bundle_id, node, source_file, source_line",
    )
    backends = fetch_dicts(
        con,
        "select bundle_id, node, source_file, service_line, backend_ip, backend_port, weight "
        "from stg_ipvs__backends where format in ('list', 'save', 'proc') "
        "order by bundle_id, node, source_file, source_line",
    )
    by_service_line: dict[tuple[str, str, str, int], list[tuple[str, int, int]]] = defaultdict(list)
    for b in backends:
        by_service_line[(b["bundle_id"], b["node"], b["source_file"], b["service_line"])].append(
            (b["backend_ip"], b["backend_port"], int(b["weight"] or 0))
        )
    promises: dict[ServiceKey, tuple[str, list[tuple[str, int, int]]]] = {}
    for s in services:  # later files win: the newest listing of a node describes the service
        key = (s["bundle_id"], s["node"], s["proto"], s["vip"], s["vport"])
        listed = by_service_line.get(
            (s["bundle_id"], s["node"], s["source_file"], s["source_line"])
        )
        if listed:
            promises[key] = ((s["scheduler"] or "").lower(), sorted(set(listed)))
    return promises


def fit_tests(
    con: duckdb.DuckDBPyConnection, expected: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    observed = fetch_dicts(
        con,
        "select bundle_id, node, proto, dialed_ip, dialed_port, backend_ip, backend_port, "
        "connections from int_nat_translations__counted_by_backend order by all",
    )
    obs: dict[tuple[Any, ...], dict[tuple[str, Any], float]] = defaultdict(dict)
    exp: dict[tuple[Any, ...], dict[tuple[str, Any], float | None]] = defaultdict(dict)
    promised: dict[tuple[Any, ...], dict[str, dict[tuple[str, Any], float | None]]] = defaultdict(
        dict
    )
    for r in observed:
        for scope_key in (("node", r["bundle_id"], r["node"]), ("all", r["bundle_id"], "*")):
            key = (*scope_key, r["proto"], r["dialed_ip"], r["dialed_port"])
            backend = (r["backend_ip"], r["backend_port"])
            obs[key][backend] = obs[key].get(backend, 0) + r["connections"]
    for e in expected:
        backend = (e["backend_ip"], e["backend_port"])
        for scope_key in (("node", e["bundle_id"], e["node"]), ("all", e["bundle_id"], "*")):
            key = (*scope_key, e["proto"], e["dialed_ip"], e["dialed_port"])
            before = exp[key].get(backend, 0.0)
            value = e["expected_connections"]
            exp[key][backend] = None if value is None or before is None else before + value
        all_key = ("all", e["bundle_id"], "*", e["proto"], e["dialed_ip"], e["dialed_port"])
        promised[all_key].setdefault(e["node"], {})[backend] = (
            None if e["expected_share"] is None else round(e["expected_share"], 6)
        )
    tests = []
    for key in sorted(obs, key=str):
        scope, bundle_id, node, proto, dialed_ip, dialed_port = key
        row = {
            "bundle_id": bundle_id,
            "node": node,
            "source_file": None,
            "scope": scope,
            "proto": proto,
            "dialed_ip": dialed_ip,
            "dialed_port": dialed_port,
            "connections": int(sum(obs[key].values())),
        }
        row.update(_test(obs[key], exp.get(key, {})))
        maps = list(promised.get(key, {}).values())
        row["nodes_disagree"] = scope == "all" and any(m != maps[0] for m in maps[1:])
        tests.append(row)
    return tests


def pearson_chi_square(f_obs: list[float], f_exp: list[float]) -> tuple[float, int, float]:
    """Pearson's goodness-of-fit test, as scipy.stats.chisquare: (statistic, dof, p-value).

    The expected counts must be positive and add up to the observed total.
    """
    # why: scipy.special is imported here, not scipy.stats: importing scipy.stats took about
    # 1 s on every analyze that tests a split, scipy.special about 0.3 s
    from scipy.special import chdtrc

    chi2 = sum((o - e) ** 2 / e for o, e in zip(f_obs, f_exp, strict=True))
    dof = len(f_obs) - 1
    return float(chi2), dof, float(chdtrc(dof, chi2))


def _test(
    observed: dict[tuple[str, Any], float], expected: dict[tuple[str, Any], float | None]
) -> dict[str, Any]:
    empty = {"chi2": None, "dof": None, "p_value": None}
    if not expected:
        return {**empty, "verdict": "no promise known (no rules or IPVS listing for this address)"}
    if any(v is None for v in expected.values()):
        return {
            **empty,
            "verdict": "not predictable from the rules (scheduler or match depends on live state)",
        }
    stray = sorted(b for b in observed if expected.get(b, 0.0) == 0.0)
    if stray:
        names = ", ".join(f"{ip}:{port}" for ip, port in stray)
        return {
            "chi2": float("inf"),
            "dof": None,
            "p_value": 0.0,
            "verdict": f"connections reached backends the rules give no share: {names}",
        }
    backends = sorted(b for b, v in expected.items() if v)
    if len(backends) < 2:
        return {**empty, "verdict": "a single backend: nothing to compare"}
    f_obs = [observed.get(b, 0.0) for b in backends]
    f_exp = [float(expected[b] or 0.0) for b in backends]
    chi2, dof, p_value = pearson_chi_square(f_obs, f_exp)
    few = " (expected counts below 5: the test is approximate)" if min(f_exp) < 5 else ""
    if p_value >= SIGNIFICANCE:
        verdict = f"consistent with the promised split (p = {p_value:.3g}){few}"
    else:
        verdict = f"deviates from the promised split (p = {p_value:.3g}){few}"
    return {"chi2": chi2, "dof": dof, "p_value": p_value, "verdict": verdict}

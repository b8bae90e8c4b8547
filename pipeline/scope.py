"""What a report covers: bundles (an id or `latest`), one node, a time window.

A scope is applied by shadowing the answer views the report reads with temporary tables of the
same name (tables, not views: DuckDB takes a view that reads its own name in `main` for a loop),
filtered by `bundle_id`, `node` and `ts` where the view has such a column (`connections` by its
`nodes`, `backend_distribution` by its `scope`). DuckDB looks in `temp` before `main`,
so the report's queries run unchanged over the scoped rows; the database file is not written.
A window keeps the bundles that hold data in it (placed by their records' times, else by the
time in their id), and of those the rows whose `ts` falls in it or that have no time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from .retention import stamp_time

# The views the report reads (and the checks are left whole: they judge the database).
SCOPED_VIEWS = (
    "ingest_files",
    "ingest_errors",
    "int_ipvs_services__compared_across_nodes",
    "ipvs_services",
    "ipvs_backends",
    "nat_translations",
    "snat_decisions",
    "backend_distribution",
    "connections",
    "conntrack_entries",
)
# Views whose `ts` gives a bundle's time span (what was captured, not when it was loaded).
SPAN_VIEWS = ("connections", "conntrack_entries", "flows")
_AGO = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Scope:
    bundle: str | None = None  # a bundle id, or "latest"
    node: str | None = None
    since: datetime | None = None  # naive UTC
    until: datetime | None = None

    @property
    def is_whole(self) -> bool:
        return self.bundle is None and self.node is None and not self.since and not self.until


@dataclass(frozen=True)
class Coverage:
    """What a report covers, for its header."""

    bundles: list[str]
    nodes: list[str]
    first_ts: datetime | None
    last_ts: datetime | None

    @property
    def span(self) -> str:
        if self.first_ts is None or self.last_ts is None:
            return "unknown (no timestamped records)"
        return f"{_iso(self.first_ts)} .. {_iso(self.last_ts)}"


class ScopeError(ValueError):
    """The scope names no bundle or node in the database."""


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO time (`2025-01-01T12:00:00Z`, no zone = UTC), a bundle stamp, or an age (`7d`)."""
    ago = _AGO.match(text)
    if ago:
        now = now or datetime.now(UTC)
        return _naive_utc(now - timedelta(seconds=int(ago[1]) * _UNIT_S[ago[2]]))
    stamped = stamp_time(text.strip())
    if stamped is not None:
        return _naive_utc(stamped)
    try:
        return _naive_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: expected 2025-01-01T12:00:00Z, 20250101T120000Z or an "
            "age such as 12h or 7d"
        ) from None


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _iso(value: datetime) -> str:
    return _naive_utc(value).isoformat(sep="T", timespec="seconds") + "Z"


def bundles_in_order(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Bundle ids oldest first: by the time in a timestamped id, else by its first record."""
    db = _database(con)
    rows = con.execute(f"select distinct bundle_id from {db}.main.raw_ingest_files").fetchall()
    ids = [str(b) for (b,) in rows]
    spans = _bundle_spans(con, ids)

    def key(bundle: str) -> tuple[datetime, str]:
        stamped = stamp_time(bundle)
        when = _naive_utc(stamped) if stamped else spans[bundle][0]
        return when or datetime.min, bundle

    return sorted(ids, key=key)


def _database(con: duckdb.DuckDBPyConnection) -> str:
    """The database file's catalog, quoted: `main.x` alone would find a temporary `x` first."""
    [(name,)] = con.execute("select current_database()").fetchall()
    return '"' + str(name).replace('"', '""') + '"'


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_catalog = ? and table_schema = 'main' and table_name = ?",
        [con.execute("select current_database()").fetchall()[0][0], view],
    ).fetchall()
    return {str(c) for (c,) in rows}


def _bundle_spans(
    con: duckdb.DuckDBPyConnection, bundles: list[str]
) -> dict[str, tuple[datetime | None, datetime | None]]:
    spans: dict[str, tuple[datetime | None, datetime | None]] = {b: (None, None) for b in bundles}
    db = _database(con)
    parts = [
        f"select bundle_id, min(ts)::timestamp as lo, max(ts)::timestamp as hi from {db}.main.{v} "
        "group by bundle_id"
        for v in SPAN_VIEWS
        if "ts" in _columns(con, v)
    ]
    if not parts:
        return spans
    rows = con.execute(
        f"select bundle_id, min(lo), max(hi) from ({' union all '.join(parts)}) group by bundle_id"
    ).fetchall()
    for bundle, lo, hi in rows:
        if bundle in spans:
            spans[bundle] = (lo, hi)
    return spans


def chosen_bundles(con: duckdb.DuckDBPyConnection, scope: Scope) -> list[str]:
    ordered = bundles_in_order(con)
    if scope.bundle == "latest":
        chosen = ordered[-1:]
    elif scope.bundle is not None:
        if scope.bundle not in ordered:
            known = ", ".join(ordered) or "none"
            raise ScopeError(f"no bundle {scope.bundle!r} in the database (bundles: {known})")
        chosen = [scope.bundle]
    else:
        chosen = ordered
    if scope.since is None and scope.until is None:
        return chosen
    spans = _bundle_spans(con, chosen)
    kept = []
    for bundle in chosen:
        lo, hi = spans[bundle]
        stamped = stamp_time(bundle)
        lo = lo or (_naive_utc(stamped) if stamped else None)
        hi = hi or lo
        if lo is None or hi is None:
            continue
        if (scope.since is None or hi >= scope.since) and (scope.until is None or lo < scope.until):
            kept.append(bundle)
    return kept


def apply_scope(con: duckdb.DuckDBPyConnection, scope: Scope) -> list[str]:
    """Shadow the report's views with scoped temporary tables; returns the bundles kept."""
    bundles = chosen_bundles(con, scope)
    if scope.node is not None:
        [(known,)] = con.execute(
            f"select count(*) from {_database(con)}.main.ingest_files where node = ?", [scope.node]
        ).fetchall()
        if not known:
            raise ScopeError(f"no node {scope.node!r} in the database")
    db = _database(con)
    for view in SCOPED_VIEWS:
        columns = _columns(con, view)
        if not columns:
            continue
        listed = ", ".join(_quote(b) for b in bundles)
        where = [f"bundle_id in ({listed})" if bundles else "false"]
        if scope.node is not None and view == "backend_distribution":
            where.append(f"scope = {_quote(scope.node)}")
        elif scope.node is not None and view == "connections":
            where.append(f"list_contains(nodes, {_quote(scope.node)})")
        elif scope.node is not None and "node" in columns:
            where.append(f"node = {_quote(scope.node)}")
        # why: a row without a time (a `conntrack -L` listing) belongs to its bundle's time
        if "ts" in columns and scope.since is not None:
            since = _quote(scope.since.isoformat(sep=" "))
            where.append(f"(ts is null or ts::timestamp >= timestamp {since})")
        if "ts" in columns and scope.until is not None:
            until = _quote(scope.until.isoformat(sep=" "))
            where.append(f"(ts is null or ts::timestamp < timestamp {until})")
        select = f"select * from {db}.main." + view
        if view == "backend_distribution" and scope.node is not None:
            # why: the report reads scope 'all'; one node's rows stand in for it
            select = f"select * replace ('all' as scope) from {db}.main." + view
        con.execute(f"create or replace temp table {view} as {select} where {' and '.join(where)}")
    return bundles


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def coverage(con: duckdb.DuckDBPyConnection) -> Coverage:
    """Bundles, nodes and time span of what the (possibly scoped) views hold."""
    bundles = [
        str(b)
        for (b,) in con.execute(
            "select distinct bundle_id from ingest_files order by bundle_id"
        ).fetchall()
    ]
    nodes = [
        str(n)
        for (n,) in con.execute("select distinct node from ingest_files order by node").fetchall()
    ]
    parts = [
        f"select min(ts)::timestamp as lo, max(ts)::timestamp as hi from {v}"
        for v in ("connections", "conntrack_entries")
    ]
    [(lo, hi)] = con.execute(
        f"select min(lo), max(hi) from ({' union all '.join(parts)})"
    ).fetchall()
    return Coverage(bundles, nodes, lo, hi)

"""`natlens prune --keep 7d|N`: drop old timestamped bundles' rows, Parquet files and folders.

A bundle's age is the UTC time in its id (``20250101T120000Z``, what `natlens collect` names
it); a bundle whose id is not a timestamp has no age and is never pruned. ``--keep N`` keeps the
N newest timestamped bundles, ``--keep 7d`` (s, m, h, d, w) those younger than that. Given the
folder of bundles, the pruned bundles' folders are deleted too (else the next `analyze` of the
folder would load them again).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from .bundle import BUNDLE_STAMP, timestamped_bundles
from .db import refresh_materialized
from .explain.run import recompute
from .loader import prune_missing

_KEEP = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Keep:
    """What to keep: the `count` newest bundles, or those younger than `age`."""

    count: int | None = None
    age: timedelta | None = None


@dataclass
class Pruned:
    bundles: list[str]  # pruned bundle ids, oldest first
    kept: list[str]
    files_dropped: int
    folders_deleted: list[Path]


def parse_keep(text: str) -> Keep:
    found = _KEEP.match(text)
    if found is None:
        raise ValueError(f"--keep {text!r}: expected a count (7) or an age (7d, 12h, 2w, 90m)")
    number, unit = int(found[1]), found[2]
    if not unit:
        return Keep(count=number)
    return Keep(age=timedelta(seconds=number * _UNIT_S[unit]))


def stamp_time(bundle_id: str) -> datetime | None:
    """The UTC time a timestamped bundle id names; None for any other id."""
    if not BUNDLE_STAMP.match(bundle_id):
        return None
    digits = re.sub(r"[-:]", "", bundle_id.removesuffix("Z")).split(".")[0]
    try:
        return datetime.strptime(digits, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def choose(bundle_ids: list[str], keep: Keep, now: datetime) -> tuple[list[str], list[str]]:
    """(to prune, to keep); bundles without a timestamp are kept."""
    timed = sorted((t, b) for b in set(bundle_ids) if (t := stamp_time(b)) is not None)
    if keep.count is not None:
        cut = max(0, len(timed) - keep.count)
        old = [b for _, b in timed[:cut]]
    else:
        assert keep.age is not None
        old = [b for t, b in timed if t < now - keep.age]
    return old, sorted(set(bundle_ids) - set(old))


def prune(
    con: duckdb.DuckDBPyConnection,
    keep: Keep,
    folder: Path | None = None,
    now: datetime | None = None,
) -> Pruned:
    """Drop the old bundles' rows and Parquet folders; delete their folders under `folder`."""
    now = now or datetime.now(UTC)
    rows = con.execute("select distinct bundle_id from raw_ingest_files").fetchall()
    in_db = [str(b) for (b,) in rows]
    on_disk = {p.name: p for p in timestamped_bundles(folder)} if folder is not None else {}
    old, kept = choose([*in_db, *on_disk], keep, now)
    dropped = prune_missing(con, [b for b in old if b in in_db], [])
    if dropped:
        recompute(con)
        refresh_materialized(con)
    deleted = []
    for bundle_id in old:
        path = on_disk.get(bundle_id)
        if path is not None:
            shutil.rmtree(path)
            deleted.append(path)
    return Pruned(old, kept, len(dropped), deleted)

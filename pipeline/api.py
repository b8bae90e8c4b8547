"""The Python API for notebooks and scripts: `natlens.analyze`, `natlens.connect`, `natlens.report`.

The same steps as the commands `natlens analyze`, `natlens sql` and `natlens report`, without the
printing and exit codes: bad input raises InputError (located: path, line or offset), a database
that cannot be opened or built raises QueryError. Query results convert to Polars with DuckDB's
`.pl()`:

    import natlens
    natlens.analyze(["captures/lab-iptables"], db="lab.duckdb")
    with natlens.connect("lab.duckdb") as con:
        flows = con.sql("select * from flows").pl()
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb

from .analyze import LoadOptions, bundle_ids_of, load_all
from .bundle import InputFile, discover_all, is_node_dir
from .cli_support import check_output_path
from .db import DEFAULT_MEMORY_LIMIT, refresh_materialized
from .db import connect as open_database
from .dblock import exclusive
from .errors import InputError, QueryError
from .explain.run import recompute
from .loader import FileOutcome
from .reader import open_current, open_read_only
from .report import render_report

PathLike = str | Path


def analyze(
    paths: PathLike | Iterable[PathLike],
    db: PathLike = "natlens.duckdb",
    *,
    node: str | None = None,
    bundle_id: str | None = None,
    engine: str = "fast",
    jobs: int | None = None,
    ray: str | None = None,
    memory_limit: str | None = None,
    data_dir: PathLike | None = None,
) -> list[FileOutcome]:
    """Load bundles, node directories and/or files into the DuckDB file `db`, as `natlens
    analyze` does (options as its flags); returns one outcome per file (`status`, `kind`,
    `records_read` = `records_parsed` + `records_rejected`, `first_errors`).

    Files that fail are in the outcomes (status `failed`) and the rest is still loaded. A path
    that does not exist, or a directory without capture files, raises InputError before any
    database is made.
    """
    given = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    database = Path(db)
    check_output_path(database, "database")
    if engine not in ("fast", "pyshark"):
        raise ValueError(f"engine must be 'fast' or 'pyshark', not {engine!r}")
    files: list[InputFile] = []
    for path in given:
        found = discover_all([path], node=node, bundle_id=bundle_id)
        if not found.files and path.is_dir():
            raise InputError(
                str(path),
                "no capture files found",
                hint="pass a bundle directory, a node's directory or files",
            )
        files.extend(found.files)
    if not files:
        raise InputError(", ".join(map(str, given)) or "paths", "no capture files given")
    with exclusive(database):
        con = open_database(
            database,
            memory_limit=memory_limit or DEFAULT_MEMORY_LIMIT,
            data_dir=None if data_dir is None else Path(data_dir),
            limit_is_default=memory_limit is None,
        )
        try:
            bundles = [p for p in given if not (p.is_dir() and is_node_dir(p, node))]
            outcomes = load_all(
                con,
                files,
                options=LoadOptions(engine, jobs, ray),
                bundle_ids=bundle_ids_of(bundles, files, bundle_id),
            )
            recompute(con)
            refresh_materialized(con)
        except duckdb.Error as exc:
            raise QueryError(str(database), str(exc).splitlines()[0]) from exc
        finally:
            con.close()
    return outcomes


def connect(db: PathLike, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to the natlens database `db`, with its views (`views` lists them).

    Derived tables left out of date by an interrupted run are rebuilt first. Read-only (the
    default), it works beside other read-only connections and `natlens sql`; read-write, as
    `natlens analyze` opens it (one writer at a time). Close it when done (or use `with`).
    """
    database = Path(db)
    if read_only:
        return open_read_only(database, locked=False)
    if not database.exists():
        raise InputError(str(database), "no such database", hint="run natlens.analyze first")
    con, _ = open_current(database)
    return con


def report(db: PathLike) -> str:
    """The Markdown report (as `natlens report` writes it) for everything in `db`."""
    # read-only, as `natlens report`: it runs beside other readers (a notebook's connection)
    con = open_read_only(Path(db), locked=False)  # not locked: it may share a notebook's DuckDB
    try:
        return render_report(con)
    finally:
        con.close()

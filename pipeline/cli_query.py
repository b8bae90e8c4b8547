"""The query commands: `natlens sql`, `views` and `export` (registered on the app in cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli_support import check_output_path, fail, note
from .errors import ExitCode, InputError, QueryError
from .export import ExportFormat, export
from .formats import Format, write_result
from .reader import open_read_only
from .sql_command import parse_params, read_sql, run, terminal_width, view_rows

DbOption = Annotated[Path, typer.Option("--db", metavar="FILE", help="DuckDB file to read from.")]
DEFAULT_DB = Path("natlens.duckdb")
FormatOption = Annotated[
    Format, typer.Option("--format", metavar="FORMAT", help="table|csv|tsv|json|jsonl|markdown.")
]
NoHeaderOption = Annotated[
    bool, typer.Option("--no-header", help="Leave out the row of column names.")
]


def sql(
    query: Annotated[
        str | None,
        typer.Argument(metavar="SQL", help="SQL to run; - reads it from stdin."),
    ] = None,
    db: DbOption = DEFAULT_DB,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", metavar="FILE", help="Read the SQL from FILE (- = stdin)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=VALUE",
            help="Bind $NAME to VALUE (text, cast by DuckDB as the SQL needs); repeatable.",
        ),
    ] = None,
    fmt: FormatOption = Format.table,
    no_header: NoHeaderOption = False,
    max_width: Annotated[
        int | None,
        typer.Option(
            "--max-width",
            metavar="N",
            min=0,
            help="Width of the table format (default: the terminal's; 0: no limit).",
        ),
    ] = None,
) -> None:
    """Run SQL on the DuckDB file (opened read-only) and print each result to stdout.

    Statements run in order; each one that returns rows is printed. Views: `natlens views`.
    On an error DuckDB's message is printed whole and the exit code is 4.

    \b
    Examples:
      natlens sql --db lab.duckdb "select * from connections limit 5"
      natlens sql --db lab.duckdb -f checks.sql --format csv
      echo "select count(*) from flows" | natlens sql --db lab.duckdb -
      natlens sql --db lab.duckdb -p node=myk8s-worker \\
          "select uid, orig_h, resp_h, service from flows where node = $node"
    """
    try:
        text = read_sql(query, file)
        params = parse_params(param or [])
    except InputError as exc:
        raise fail(exc, ExitCode.USAGE) from exc
    width = max_width if max_width is not None else terminal_width()
    try:
        con = open_read_only(db, note=note)
    except InputError as exc:
        raise fail(exc, ExitCode.INPUT) from exc
    except QueryError as exc:
        raise fail(exc, ExitCode.DATABASE) from exc
    try:
        run(con, text, params, sys.stdout, fmt, header=not no_header, width=width or None)
    except InputError as exc:
        raise fail(exc, ExitCode.USAGE) from exc
    except QueryError as exc:
        raise fail(exc, ExitCode.DATABASE) from exc
    finally:
        con.close()


def views(
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            metavar="FILE",
            help="List what this database holds (default: the views natlens defines).",
        ),
    ] = None,
    fmt: Annotated[
        Format | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="table|csv|tsv|json|jsonl|markdown (default: table on a terminal, else tsv).",
        ),
    ] = None,
    no_header: NoHeaderOption = False,
) -> None:
    """List every view with the one-line question it answers (from the SQL file headers).

    Columns: name, layer, `view` or `table` (materialised by analyze), question. Piped (not a
    terminal), the default is tab-separated, so `cut -f1` gives the names.

    \b
    Examples:
      natlens views
      natlens views --db lab.duckdb --format tsv
    """
    con = None
    if db is not None:
        try:
            con = open_read_only(db, note=note)
        except InputError as exc:
            raise fail(exc, ExitCode.INPUT) from exc
        except QueryError as exc:
            raise fail(exc, ExitCode.DATABASE) from exc
    try:
        columns, rows = view_rows(con)
    finally:
        if con is not None:
            con.close()
    if fmt is None:
        fmt = Format.table if sys.stdout.isatty() else Format.tsv
    write_result(sys.stdout, fmt, columns, [rows], header=not no_header, width=None)


def export_(
    what: Annotated[
        str, typer.Argument(metavar="VIEW|SQL", help="A view (e.g. flows) or one query.")
    ],
    output: Annotated[
        str,
        typer.Option("--output", "-o", metavar="FILE", help="File to write; - is stdout."),
    ],
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", metavar="FORMAT", help="parquet|csv|jsonl|zeek."),
    ] = ExportFormat.parquet,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write a view or a query's rows to a file for other tools (written whole, or not at all).

    `zeek` writes Zeek's ASCII conn.log from `flows` (or a query selecting its columns), which
    zeek-cut and Zeek log readers accept.

    \b
    Examples:
      natlens export flows --db lab.duckdb --format zeek -o conn.log
      natlens export connections --db lab.duckdb --format parquet -o connections.parquet
      natlens export "select * from flows where service = 'http'" --format csv -o -
    """
    try:
        check_output_path(Path(output), "export")
    except InputError as exc:
        raise fail(exc, ExitCode.DATABASE) from exc
    try:
        export(db, what, fmt, output, note=note)
    except InputError as exc:
        code = ExitCode.INPUT if exc.path == str(db) else ExitCode.USAGE
        raise fail(exc, code) from exc
    except QueryError as exc:
        raise fail(exc, ExitCode.DATABASE) from exc
    except OSError as exc:
        print(f"{output}: error: cannot write: {exc.strerror or exc}", file=sys.stderr)
        raise typer.Exit(int(ExitCode.DATABASE)) from exc

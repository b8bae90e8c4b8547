"""The `natlens` command: parses arguments, calls the pipeline, maps errors to exit codes."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import duckdb
import typer
from rich.console import Console

from . import __version__
from .analyze import LoadOptions, bundle_ids_of, load_all
from .atomic import write_text_atomic
from .bundle import InputFile, discover_all, is_node_dir
from .capture.executors import RayUnavailableError
from .cli_query import export_, sql, views
from .cli_support import HelpCommand, check_output_path, run_app
from .collect.command import collect_command
from .db import DEFAULT_MEMORY_LIMIT, connect, refresh_materialized
from .dblock import LockedError, exclusive
from .diff import DiffError, changes, pick, render
from .errors import ExitCode, InputError, QueryError
from .explain.run import recompute
from .findings import FailOn, count_at_or_above
from .loader import FileOutcome
from .progress import RunProgress
from .reader import open_read_only
from .report import render_report, run_checks
from .retention import parse_keep, prune
from .scope import Scope, ScopeError, apply_scope, parse_time
from .signals import Terminated, interrupted, interrupts

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    # why: plain help (Rich markup ate `[ray]`); errors reach the net in cli_support.run_app
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DbOption = Annotated[
    Path, typer.Option("--db", metavar="FILE", help="DuckDB file to load into / read from.")
]
DEFAULT_DB = Path("natlens.duckdb")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)$", re.IGNORECASE)


def _check_memory_limit(value: str | None) -> str | None:
    if value is not None and not _MEMORY.match(value.strip()):
        raise typer.BadParameter(f"{value!r} is not a size like 512MB or 2GB")
    return value


class Engine(StrEnum):
    fast = "fast"
    pyshark = "pyshark"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"natlens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Explain what the Linux kernel did to connections through a Kubernetes Service.

    \b
    Examples:
      natlens analyze captures/lab-iptables --db lab.duckdb -o report.md
      natlens sql --db lab.duckdb "select * from connections limit 5"
      natlens export flows --db lab.duckdb --format zeek -o conn.log
    """


def _fail(exc: InputError | QueryError, code: ExitCode) -> typer.Exit:
    if interrupted():  # DuckDB's `Query interrupted`: the signal is what is reported
        raise KeyboardInterrupt from exc
    err.print(str(exc), markup=False)
    return typer.Exit(int(code))


@app.command(cls=HelpCommand)
def analyze(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH",
            help="Capture bundles, one node's directory (its name is the node) and/or files.",
        ),
    ],
    db: DbOption = DEFAULT_DB,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write the Markdown report here (- = stdout)."
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit 1 if the database holds a rejected record, 5 if a data check fails "
            "(judged after the run, so every run over the same data fails again).",
        ),
    ] = False,
    node: Annotated[
        str | None,
        typer.Option(
            "--node",
            metavar="NAME",
            help="Node of single files and of a node's directory (default: '-' for files, "
            "the folder's name for a directory without sub-directories).",
        ),
    ] = None,
    bundle_id: Annotated[
        str | None,
        typer.Option(
            "--bundle-id",
            metavar="NAME",
            help="Bundle name (default: the bundle directory's name; for a node's directory, "
            "the folder above it).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print errors.")] = False,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            metavar="fast|pyshark",
            help="pcap decoder: fast (vectorised) or pyshark (tshark; slow, cross-check).",
        ),
    ] = Engine.fast,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            "--memory-limit",
            metavar="SIZE",
            callback=_check_memory_limit,
            help="DuckDB memory limit, e.g. 1GB; work beyond it spills to <db>.tmp "
            f"(default: {DEFAULT_MEMORY_LIMIT}, so a whole analyze stays near 1 GiB; more is "
            "faster on big bundles).",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            metavar="N",
            help="Cores the run uses: captures decoded at once, and DuckDB threads (default: all).",
        ),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Decode captures as Ray tasks: a cluster ADDRESS, or `local` to start one "
            "(needs natlens[ray]; the data directory must be on a path every worker sees).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Where the captures' Parquet files go (default: <db>.d, or the one the "
            "database was last used with).",
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            help="If another analyze holds the database, wait up to SECONDS for it (default: "
            "fail at once, exit 6).",
        ),
    ] = 0.0,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            help="Exit 7 when the findings view holds a finding of this severity or worse "
            "(judged on the whole database after the run).",
        ),
    ] = None,
) -> None:
    """Load capture bundles/files into the DuckDB file and optionally write the report.

    \b
    Examples:
      natlens analyze captures/lab-iptables --db lab.duckdb -o report.md
      natlens analyze captures/lab-iptables/myk8s-worker --db lab.duckdb
      natlens analyze eth0.pcap conntrack.txt --node worker-1 --db one.duckdb -q
    """
    with _signals_stop("the files recorded before it are kept; run the same command again to "
                       "finish"), _held(db, wait):  # fmt: skip
        _analyze(
            paths,
            db,
            output,
            strict,
            node,
            bundle_id,
            quiet,
            LoadOptions(engine.value, jobs, ray),
            memory_limit,
            data_dir,
            fail_on,
        )


@contextmanager
def _signals_stop(outcome: str) -> Iterator[None]:
    """SIGINT/SIGTERM end the command: the transaction in progress rolls back, one line says
    `interrupted (SIGINT): <outcome>`, exit 130 (143 for SIGTERM); never a traceback."""
    with interrupts() as caught:
        try:
            yield
        except typer.Exit:
            raise
        except Exception as exc:
            # why: a signal can surface as another library's error (DuckDB's `Query
            # interrupted`, raised from wherever the query was); it is still the signal
            if not (isinstance(exc, Terminated | duckdb.InterruptException) or interrupted()):
                raise
            raise _interrupted_exit(caught.signum, outcome) from exc
        except KeyboardInterrupt as exc:
            raise _interrupted_exit(caught.signum, outcome) from exc


@contextmanager
def _held(db: Path, wait: float) -> Iterator[None]:
    """One analyze per database at a time (the lock file beside it); exit 6 when held."""
    if str(db).startswith(":memory:"):
        yield
        return
    try:
        with exclusive(db, wait):
            yield
    except LockedError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(int(ExitCode.LOCKED)) from exc


def _interrupted_exit(signum: int | None, outcome: str) -> typer.Exit:
    code = 143 if signum == signal.SIGTERM else 130
    err.print(f"interrupted ({'SIGTERM' if code == 143 else 'SIGINT'}): {outcome}", markup=False)
    return typer.Exit(code)


def _analyze(
    paths: list[Path],
    db: Path,
    output: Path | None,
    strict: bool,
    node: str | None,
    bundle_id: str | None,
    quiet: bool,
    options: LoadOptions,
    memory_limit: str | None,
    data_dir: Path | None,
    fail_on: FailOn | None = None,
) -> None:
    exit_code = ExitCode.OK
    try:  # why: a bad option is reported before any work, and before a database is made
        check_output_path(output, "report")
        check_output_path(db, "database")
    except InputError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(int(ExitCode.DATABASE)) from exc
    files = []
    for path in paths:
        try:
            found = discover_all([path], node=node, bundle_id=bundle_id)
        except InputError as exc:
            err.print(str(exc), markup=False)
            exit_code = ExitCode.INPUT
            continue
        if not quiet:
            for skipped in found.skipped:
                err.print(f"{skipped.display}: skipped: {skipped.reason}", markup=False)
        if not found.files and path.is_dir():
            err.print(
                f"{path}: error: no capture files found hint: pass a bundle directory, "
                "a node's directory or files",
                markup=False,
            )
            exit_code = ExitCode.INPUT
        files.extend(found.files)
    if not files:  # nothing to load: no database is made or touched
        raise typer.Exit(int(exit_code or ExitCode.INPUT))
    try:
        con = connect(
            db,
            memory_limit=memory_limit or DEFAULT_MEMORY_LIMIT,
            data_dir=data_dir,
            limit_is_default=memory_limit is None,
        )
    except QueryError as exc:
        raise _fail(exc, ExitCode.DATABASE) from exc
    progress = RunProgress(err, quiet=quiet)
    try:
        # why: a node's directory is part of a bundle; the rest of that bundle is not gone
        bundles = [p for p in paths if not (p.is_dir() and is_node_dir(p, node))]
        outcomes = _load_with_progress(con, bundles, files, options, bundle_id, progress)
    except RayUnavailableError as exc:
        con.close()
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(int(ExitCode.USAGE)) from exc
    except duckdb.Error as exc:  # also DuckDB's `Query interrupted` (see _fail)
        con.close()
        raise _fail(QueryError(str(db), str(exc).splitlines()[0]), ExitCode.DATABASE) from exc
    try:
        with progress.step("explaining rules and routes"):
            recompute(con)
    except duckdb.Error as exc:
        con.close()
        raise _fail(QueryError(str(db), str(exc).splitlines()[0]), ExitCode.DATABASE) from exc
    for outcome in outcomes:
        _print_outcome(outcome, quiet)
        if outcome.status == "failed":
            exit_code = ExitCode.INPUT
    if not quiet:
        _print_totals(outcomes)
    try:
        with progress.step("building legs and connections"):
            refresh_materialized(con)
    except QueryError as exc:  # e.g. out of memory under --memory-limit: the loads are kept
        con.close()
        if not interrupted():
            err.print("the loaded files are kept; legs/connections were not rebuilt", markup=False)
        raise _fail(exc, ExitCode.DATABASE) from exc
    if output is not None:
        with progress.step("rendering the report"):
            text = render_report(con)
        if not _write_report(output, text):
            con.close()
            raise typer.Exit(int(ExitCode.DATABASE))
        if not quiet and str(output) != "-":
            err.print(f"report written to {output}", markup=False)
    # why: --strict judges the database after the run, not this run's counts: a cron job's
    # second run over the same files (all unchanged) fails as the first did
    [(rejected,)] = con.execute(
        "select coalesce(sum(records_rejected), 0) from raw_ingest_files where status = 'loaded'"
    ).fetchall()
    failing_checks = run_checks(con)
    for name, count in failing_checks.items():
        err.print(f"check {name}: {count} offending rows", markup=False)
    try:
        alarms = count_at_or_above(con, fail_on.value) if fail_on is not None else {}
    except duckdb.Error as exc:
        con.close()
        raise _fail(QueryError(str(db), str(exc).splitlines()[0]), ExitCode.DATABASE) from exc
    for severity, count in sorted(alarms.items()):
        err.print(f"findings: {count} {severity} (see the findings view)", markup=False)
    con.close()
    if exit_code == ExitCode.OK and strict and rejected:
        exit_code = ExitCode.RECORD_ERRORS
    if exit_code == ExitCode.OK and strict and failing_checks:
        exit_code = ExitCode.CHECKS
    if exit_code == ExitCode.OK and alarms:
        exit_code = ExitCode.FINDINGS
    raise typer.Exit(int(exit_code))


def _load_with_progress(
    con: duckdb.DuckDBPyConnection,
    paths: list[Path],
    files: list[InputFile],
    options: LoadOptions,
    bundle_id: str | None,
    progress: RunProgress,
) -> list[FileOutcome]:
    with progress.loading(files) as (started, done):
        return load_all(
            con,
            files,
            options=options,
            bundle_ids=bundle_ids_of(paths, files, bundle_id),
            started=started,
            done=done,
        )


def _print_outcome(outcome: FileOutcome, quiet: bool) -> None:
    f = outcome.file
    if outcome.status == "failed":
        err.print(f"{f.display}: error: {outcome.reason}", markup=False)
        return
    for e in outcome.first_errors:
        where = f"{f.display}:{e.line}" if e.line is not None else f"{f.display}:@{e.offset}"
        level = "error" if e.is_rejection else "warning"
        err.print(f"{where}: {level}: {e.reason}", markup=False)
    shown = len(outcome.first_errors)
    total = outcome.records_rejected + outcome.warnings
    if total > shown:
        err.print(f"{f.display}: note: {total - shown} more in ingest_errors", markup=False)
    if quiet:
        return
    if outcome.status in ("skipped", "unchanged", "deleted"):
        err.print(f"{f.display}: {outcome.status}: {outcome.reason}", markup=False)
    else:
        err.print(
            f"{f.display}: {outcome.kind}: read {outcome.records_read} = parsed "
            f"{outcome.records_parsed} + rejected {outcome.records_rejected}",
            markup=False,
        )


def _print_totals(outcomes: list[FileOutcome]) -> None:
    read = sum(o.records_read for o in outcomes)
    parsed = sum(o.records_parsed for o in outcomes)
    rejected = sum(o.records_rejected for o in outcomes)
    by_status: dict[str, int] = {}
    for o in outcomes:
        by_status[o.status] = by_status.get(o.status, 0) + 1
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
    err.print(
        f"total: {len(outcomes)} files ({statuses}); "
        f"read {read} = parsed {parsed} + rejected {rejected}",
        markup=False,
    )


@app.command(cls=HelpCommand)
def report(
    db: DbOption = DEFAULT_DB,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Output file (default and -: stdout)."),
    ] = None,
    bundle: Annotated[
        str | None,
        typer.Option("--bundle", metavar="ID|latest", help="Only this bundle (latest: newest)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="TIME", help="Only records from TIME (ISO, stamp or 7d)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help="Only records before TIME.")
    ] = None,
    node: Annotated[
        str | None, typer.Option("--node", metavar="NAME", help="Only this node.")
    ] = None,
) -> None:
    """Write the Markdown report for everything loaded in the DuckDB file (or a part of it).

    \b
    Examples:
      natlens report --db lab.duckdb -o report.md
      natlens report --db lab.duckdb --bundle latest --node worker-1 | less
      natlens report --db runs.duckdb --since 24h
    """
    try:
        check_output_path(output, "report")
    except InputError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(int(ExitCode.DATABASE)) from exc
    scope = _report_scope(bundle, node, since, until)
    if not db.exists():
        raise _fail(
            InputError(str(db), "no such database", hint="run `natlens analyze PATH --db FILE`"),
            ExitCode.INPUT,
        )
    with _signals_stop("no report was written and the database is as it was"):
        try:
            con = _open_current(db)
            if not scope.is_whole:
                try:
                    apply_scope(con, scope)
                except ScopeError as exc:
                    con.close()
                    err.print(f"{db}: error: {exc}", markup=False)
                    raise typer.Exit(int(ExitCode.USAGE)) from exc
            text = render_report(con)
        except QueryError as exc:
            raise _fail(exc, ExitCode.DATABASE) from exc
        con.close()
    if output is None or str(output) == "-":
        typer.echo(text, nl=False)
    elif not _write_report(output, text):
        raise typer.Exit(int(ExitCode.DATABASE))


def _report_scope(bundle: str | None, node: str | None, since: str | None, until: str | None
                  ) -> Scope:  # fmt: skip
    try:
        start = parse_time(since) if since is not None else None
        return Scope(bundle, node, start, parse_time(until) if until is not None else None)
    except ValueError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(int(ExitCode.USAGE)) from exc


def _open_current(db: Path) -> duckdb.DuckDBPyConnection:
    """The database read-only with its derived tables current (reader.open_read_only): stale
    tables are rebuilt first (with a note), and readers never wait for each other."""
    return open_read_only(db, note=lambda text: err.print(text, markup=False))


def _write_report(output: Path, text: str) -> bool:
    """Write the report whole or not at all; on failure print one located line. `-`: stdout."""
    if str(output) == "-":
        typer.echo(text, nl=False)
        return True
    try:
        write_text_atomic(output, text)
    except OSError as exc:  # e.g. a full disk: the previous report is left as it was
        err.print(f"{output}: error: cannot write report: {exc.strerror or exc}", markup=False)
        return False
    return True


@app.command(name="diff", cls=HelpCommand)
def diff_command(
    db: DbOption = DEFAULT_DB,
    old: Annotated[
        str | None,
        typer.Option("--from", metavar="BUNDLE", help="Older bundle (default: the one before)."),
    ] = None,
    new: Annotated[
        str | None,
        typer.Option("--to", metavar="BUNDLE", help="Newer bundle (default: the newest)."),
    ] = None,
) -> None:
    """What changed between two bundles: Services, backends, shares, SNAT classes, findings,
    rejected records (Markdown on stdout).

    \b
    Examples:
      natlens diff --db runs.duckdb
      natlens diff --db runs.duckdb --from 20250101T000000Z --to 20250102T000000Z
    """
    if not db.exists():
        raise _fail(InputError(str(db), "no such database"), ExitCode.INPUT)
    with _signals_stop("nothing was written and the database is as it was"):
        try:
            con = _open_current(db)
        except QueryError as exc:
            raise _fail(exc, ExitCode.DATABASE) from exc
        try:
            pair = pick(con, old, new)
            text = render(*pair, changes(con, *pair))
        except DiffError as exc:
            err.print(f"{db}: error: {exc}", markup=False)
            raise typer.Exit(int(ExitCode.USAGE)) from exc
        except duckdb.Error as exc:
            raise _fail(QueryError(str(db), str(exc).splitlines()[0]), ExitCode.DATABASE) from exc
        finally:
            con.close()
    typer.echo(text, nl=False)


app.command(cls=HelpCommand)(sql)
app.command(cls=HelpCommand)(views)
app.command("export", cls=HelpCommand)(export_)


@app.command(name="prune", cls=HelpCommand)
def prune_command(
    keep: Annotated[
        str, typer.Option("--keep", help="Bundles to keep: a count (7) or an age (7d, 12h, 2w).")
    ],
    folder: Annotated[
        Path | None,
        typer.Argument(help="The folder of bundles: the pruned bundles' folders go too."),
    ] = None,
    db: DbOption = DEFAULT_DB,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Wait up to SECONDS for a running analyze.")
    ] = 0.0,
) -> None:
    """Drop old timestamped bundles: their rows, Parquet files and (given FOLDER) folders."""
    try:
        wanted = parse_keep(keep)
    except ValueError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(int(ExitCode.USAGE)) from exc
    if not db.exists():
        raise _fail(InputError(str(db), "no such database"), ExitCode.INPUT)
    with _held(db, wait):
        try:
            con = connect(db)
            done = prune(con, wanted, folder)
            con.close()
        except QueryError as exc:
            raise _fail(exc, ExitCode.DATABASE) from exc
        except duckdb.Error as exc:
            raise _fail(QueryError(str(db), str(exc).splitlines()[0]), ExitCode.DATABASE) from exc
    for bundle in done.bundles:
        err.print(f"pruned {bundle}", markup=False)
    err.print(
        f"pruned {len(done.bundles)} bundle(s) ({done.files_dropped} files' rows, "
        f"{len(done.folders_deleted)} folder(s)); kept {len(done.kept)}",
        markup=False,
    )


@app.command(cls=HelpCommand)
def version() -> None:
    """Print the natlens version (also: natlens --version)."""
    typer.echo(__version__)


app.command(name="collect", cls=HelpCommand)(collect_command)


def main() -> None:
    run_app(app)
